"""Training (TensorFlow/Keras, extra ``train``): ``network`` (the seed's CNN and the fused ensemble),
``train`` (the recipe), ``export`` (to float32, dynamic-range and int8 .tflite), ``distill`` (a
one-network student of the ensemble), ``warm_start`` (members rebuilt from a shipped model to
fine-tune), ``firing`` (the firing model's fit), ``crossval`` (cross-validation by day) and
``compare`` (other model families on the same cells)."""
