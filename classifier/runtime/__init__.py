"""What the live and offline paths need to classify: ``model`` (load and run a .tflite with LiteRT),
``posterior`` (a cell's running posterior and decision), ``cells`` (one cell's state), ``windows``
(labelled window sets on disk). Nothing here imports TensorFlow."""
