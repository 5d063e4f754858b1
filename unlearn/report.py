"""`python -m unlearn.report <run or sweep dir> [key=value ...]`: tables and trade-off plots from
every results.json below the directory. Thin: options are conf/report.yaml (OmegaConf dotlist
overrides); the work is in unlearn/reporting/."""
import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf" / "report.yaml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn.report", description=__doc__)
    parser.add_argument("dir", type=Path, help="a run directory or a sweep directory")
    parser.add_argument("overrides", nargs="*", help="conf/report.yaml overrides, e.g. out_dir=report")
    args = parser.parse_args(argv)
    cfg = OmegaConf.merge(OmegaConf.load(CONF), OmegaConf.from_dotlist(args.overrides))
    from unlearn.errors import ConfigError
    from unlearn.reporting.write import write_report

    try:
        written = write_report(args.dir, cfg)
    except (FileNotFoundError, ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
