"""Labelled synthetic recordings from three generators, each built on its own principle from the same
published facts: ``template`` (parametric spike templates), ``biophysical`` (membrane dynamics and
a patch model), ``compartmental`` (a soma–axon–dendrite conductance model, written apart from the
other two); ``firing_variety`` (the exceptions to the textbook's firing), ``noise_masks`` (real
baseline noise cut from recordings) and ``dataset`` (`raphe synth`: recordings, manifest, window set)."""
