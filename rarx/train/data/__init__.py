"""Training data builders, one module each (``rarx train data NAME``), and the one
manifest convention they share (:mod:`rarx.train.data.manifest`)."""
