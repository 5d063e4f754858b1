"""The workflows the entry points run: memorize -> unlearn -> evaluate (run_pipeline), evaluation of a saved model (evaluate_saved), and the input checks both share."""
