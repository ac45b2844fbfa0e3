"""Training (TensorFlow/Keras, extra ``train``): ``network`` (the seed's CNN and the fused ensemble),
``train`` (the recipe), ``export`` (to float32, dynamic-range and int8 .tflite)."""
