"""The contracts components implement: encoders and their outputs, batches, fusions, heads
(and the Protocols of their abilities), tasks, modalities and pretraining objectives.
Plugins reach them through :mod:`zoo.plugin`; the core builds on them."""
