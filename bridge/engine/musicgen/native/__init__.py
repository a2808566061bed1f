"""C source of Segue's own CPU kernels, compiled on the producer's machine (bridge/engine/musicgen/native_int8.py)."""
