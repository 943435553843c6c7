"""TaskFlow decorators of the WaveSpeed provider (``@task.wavespeed``)."""
