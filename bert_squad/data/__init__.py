"""SQuAD JSON -> tokens -> doc-stride windows -> features -> TFRecord, without TensorFlow (but `cache`).

  squad            SQuAD JSON file -> SquadExamples + ReadStats
  tokenization     text -> WordPiece tokens -> ids (the original FullTokenizer)
  windows          one example -> its doc-stride windows (the original algorithm)
  features         SquadExamples -> InputFeatures, one per window
  records          feature fields -> tf.train.Example bytes; windows -> record + metadata-line bytes
  tfrecord         record bytes -> TFRecord file entries
  feature_files    InputFeatures <-> TFRecord + metadata JSON lines + info JSON; the cache key
  feature_workers  example chunks -> encoded windows, in order, across worker processes
  build            SQuAD file -> its feature files (`build_feature_files`, behind `python -m bert_squad.preprocess`)
  cache            a run's feature files, built once and reused (imports TensorFlow)

Only a docstring: no re-exports, so importing one module never imports its siblings."""
