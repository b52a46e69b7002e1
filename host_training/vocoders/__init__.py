"""Small neural vocoders trained on our own bona fide speech, to make "vocoded twins".

A twin is a bona fide clip re-synthesised from its log-mel by a neural vocoder: same speaker,
same words, same prosody, only the waveform generator differs. Training a detector on such
pairs teaches it the generator's traces instead of content, level or channel cues.

Families (``VocoderConfig.family``):

- ``hifigan``: conv pre-net, transposed-conv upsampling, multi-receptive-field residual blocks
  (HiFi-GAN V3-like, "ResBlock2").
- ``melgan``: the same upsampler, but each stage followed by one dilated residual stack (1, 3, 9)
  instead of the MRF (MelGAN).
- ``nsf``: neural source-filter. A sine-harmonic + noise excitation built in NumPy from a YIN F0
  estimate is shaped by a non-causal dilated conv filter conditioned on the upsampled mel.

Each vocoder analyses audio with its own log-mel (``log_mel``), independent of the detector's
front end. Training uses a multi-resolution STFT loss (spectral convergence + log magnitude) and
a mel L1, no discriminator: a few CPU minutes already give speech-like twins.

Modules, one job each: ``config`` (families and their settings), ``pitch`` (F0 and excitation,
NumPy), ``networks`` (TF analysis, losses, generators), ``training``, ``synthesis`` (loading a
vocoder, twins, the twin corpus), ``quality`` (distances to the source), ``cli`` (the
`edge-train vocoder` group; host side, needs the ``train`` extra).
"""
