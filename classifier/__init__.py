"""Telling SER from NSER cells (or any classes a lab's data holds).

Runtime (no TensorFlow): ``runtime`` loads and runs a model with LiteRT, ``posterior`` combines a
cell's spikes, ``cells`` keeps one cell's state. Data: ``synthetic`` and ``synth`` generate labelled
recordings, ``noise_masks`` cuts real baseline noise, ``windows`` reads and writes window sets.
Training side (extra ``train``): ``model``, ``train``, ``export``. Judging: ``evaluate``, ``figures``.
"""
