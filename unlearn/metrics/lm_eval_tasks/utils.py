"""Field adapters for the local task copies; lm-eval's own helpers wherever the fields already match."""
from lm_eval.tasks.hellaswag.utils import preprocess
from lm_eval.tasks.super_glue.copa.utils import doc_to_choice as copa_doc_to_choice  # noqa: F401
from lm_eval.tasks.super_glue.copa.utils import doc_to_target as copa_doc_to_target  # noqa: F401
from lm_eval.tasks.super_glue.copa.utils import doc_to_text as copa_doc_to_text  # noqa: F401


def pubmedqa_official_test(dataset):
    # lm-eval's pubmedqa scores bigbio's fold-0 test split: the 500 rows of the official PQA-L test set.
    return dataset.filter(lambda doc: doc["in_official_test_split"])


def pubmedqa_doc_to_text(doc) -> str:
    # Same prompt as lm-eval's preprocess_pubmedqa, on the lower-case field names of the local copy.
    return "Abstract: {}\nQuestion: {}\nAnswer:".format("\n".join(doc["contexts"]), doc["question"])


def hellaswag_process_docs(dataset):
    # The local copy already holds lm-eval's query (activity_label + ": " + ctx); apply the same cleanup.
    def one(doc):
        return {"query": preprocess(doc["query"]), "choices": [preprocess(e) for e in doc["endings"]], "label": int(doc["label"])}

    return dataset.map(one)
