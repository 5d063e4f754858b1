from unlearn.models.load import load_model, save_model

__all__ = ["load_model", "save_model"]
