"""Explanations: what drives each model version, as SHAP values (docs/explain.md).

- ``shapley``: the explainer chosen from the model (tree, linear, kernel), the report and its
  local-accuracy check; numpy and shap only.
- ``compute``: ``python -m mlcicd.explain.compute SPEC`` — one model explained in its build
  environment, where its classes unpickle.
- ``report``: the rows and baseline read from the training channel, the computation run, the
  report stored beside the model; the register stage's step and ``mlcicd explain`` call it.
"""
