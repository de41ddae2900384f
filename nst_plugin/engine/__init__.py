"""Pure-tensor style transfer: encoders, losses and methods. Imports nothing above itself."""
