"""The console scripts, one module each: parse the command line, compose, call the library,
exit. They never import each other; what they share lives in the library."""
