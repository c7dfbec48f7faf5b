"""From logits to answers and scores: n-best spans, final text, prediction files, the official metrics.

Only a docstring: no re-exports, so importing one module never imports its siblings.

  logits_io         RawResult / Logits (the model's per-feature logits), their checks, predict_logits.npz
  span_search       logits [F, seq] -> the start/end spans the original keeps (Candidates), null scores
  text_alignment    WordPiece span -> answer text in the original words (get_final_text, SpanAligner)
  nbest_lists       examples + features + logits -> predictions, n-best lists, null odds (compute_predictions)
  prediction_files  those dicts -> predictions.json, nbest_predictions.json, null_odds.json (byte-identical)
  rewrite           SQuAD file + feature metadata + saved logits -> the prediction files; a run's inputs
  metrics           SQuAD files and answers -> per-question and total scores (official v1.1 / v2.0)
  thresholds        v2.0 scores + no-answer probabilities -> best null thresholds, precision-recall curves
  eval_plots        precision-recall curves and na_prob histograms -> the official PNG images
  evaluation        gold Dataset + predictions -> what the official evaluate-v2.0.py prints
"""
