"""Labelled synthetic recordings: ``template`` (the template generator), ``noise_masks`` (real baseline
noise cut from recordings) and ``dataset`` (`raphe synth`: recordings, manifest and window set)."""
