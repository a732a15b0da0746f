//! Runnable programs that embed `aegis-core` live beside this file as cargo examples.
