"""The engine: the device, loaded models, name resolution, and running tasks' steps on them."""
