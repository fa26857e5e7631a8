"""The console scripts, one module each: parse the command line, compose, call the library,
exit. They never import each other; what they share lives in the library (`arguments`: the
command-line mistakes answered before Hydra starts). They import the library (and with it
torch) inside the Hydra task function, so `--help`, `--cfg` and a mistake found in the command
line answer without it. Nothing imports cli."""
