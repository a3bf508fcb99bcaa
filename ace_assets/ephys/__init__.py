"""ephys: pure (Dagster-free) signal science for Neuralynx recordings.

filters (zero-phase Butterworth / FIR, streamed), artifacts (excursion / saturation
intervals), phase (Hilbert phase, envelope, band power), multitaper (DPSS spectrogram).
Stores are laid out (n_samples, n_channels); see ace_assets.io.neuralynx.
"""
