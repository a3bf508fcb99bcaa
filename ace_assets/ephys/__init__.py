"""ephys: pure (Dagster-free) signal science for Neuralynx recordings.

filters (zero-phase Butterworth / FIR, streamed, segments mirror-padded for the impulse
response), artifacts (excursion / saturation intervals), phase (Hilbert phase, envelope,
band power), multitaper (DPSS spectrogram), windows (analysis windows per segment: masked
across pauses, adaptive for short recordings), masks (samples that were not recorded).
Stores are laid out (n_samples, n_channels); see ace_assets.io.neuralynx.
"""
