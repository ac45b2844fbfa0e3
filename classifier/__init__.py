"""Telling SER from NSER cells (or any classes a lab's data holds), in four parts by job:

- ``runtime``: what serving and classifying need, and nothing more (LiteRT, never TensorFlow):
  loading and running a model, the running cell posterior, a cell's state, labelled window sets.
- ``training``: the seed's network in Keras, training, export to .tflite (the only TensorFlow).
- ``evaluation``: metrics, the report and its figures, and calibration of the cell posterior.
- ``synthetic``: labelled synthetic recordings, from generators built on the published facts.

The default model ships in ``default/``.
"""
