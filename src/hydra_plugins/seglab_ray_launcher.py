"""seglab's Ray launcher as a Hydra plugin: Hydra instantiates launchers only from the
`hydra_plugins` package. The launcher itself is `seglab.sweeps.ray_launcher`, which imports ray
when a sweep starts, so other commands never import it."""

from seglab.sweeps.ray_launcher import RayLauncher


class SeglabRayLauncher(RayLauncher):
    """`hydra.launcher._target_` of conf/hydra/launcher/ray.yaml: the published Ray
    launcher's keys (`ray.init`, `ray.remote`)."""
