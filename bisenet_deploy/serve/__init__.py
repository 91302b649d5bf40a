"""Serving at scale: Triton Inference Server model repositories and a PyTriton server.

- `model_io`: the served tensors and the metadata parameters, in Triton's terms (pure);
- `model_config`: config.pbtxt text for a production Triton (pure);
- `repository`: `bisenet-export triton`, a model repository written atomically;
- `libpython`: makes the Triton Python backend load this interpreter's own libpython;
- `server`: `bisenet-serve`, a real tritonserver (PyTriton) serving our runners, supervised;
- `instance`: the callable bound to each model instance (a gathered batch through a runner);
- `triton_process`: what the supervisor reads from PyTriton's tritonserver process;
- `watchdog`: a separate process that cleans up after bisenet-serve, even after kill -9;
- `client`: a `Runner` whose model lives on a Triton server (tritonclient).

Importing this package is cheap: pytriton and tritonclient are imported only by `server` and
`client`, when used (`pip install -e '.[serve]'`).
"""
