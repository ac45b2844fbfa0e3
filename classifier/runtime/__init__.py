"""What the live and offline paths need to classify: ``model`` (load and run a .tflite with LiteRT),
``novelty`` (whether a window looks like anything the model was trained on), ``posterior`` (a cell's
running posterior and decision), ``firing`` (the firing model and a cell's spike train), ``cells``
(one cell's state, and ``CellState``, the record every output renders), ``windows`` (labelled window
sets on disk). Nothing here imports TensorFlow."""
