#!/usr/bin/env python
"""Fine-tune the default model on labelled synthetic street scenes, on a CPU, in minutes.

Why: the INT8 accuracy gate (docs/int8.md) needs a model with real class margins. Random weights
give near-tied logits, where any perturbation flips labels; no trained checkpoint is available
offline. This trains the default architecture from its seeded random init (what `bisenet-export
onnx` uses without --checkpoint) on `bisenet_deploy.synthetic.synthetic_scene`, with the paper's
loss (cross-entropy on the main head plus the four aux heads, ignore index 255), then writes an
ordinary checkpoint (`bisenet-export onnx --checkpoint OUT`) and scores it on held-out scenes.

Scenes are drawn at the deployment input size (--scene-size, default 2048x1024) and resized to
the network size (--network-size, default 1024x512) exactly as the exported graph does (bilinear,
align_corners=False; labels nearest), then random crops (--crop) with horizontal flips train.
Seeds: training scenes 100000.., held-out scenes 920000.. (the INT8 gate's own held-out scenes
start at 910000, calibration sets in docs/int8.md at 500000).

    python scripts/train_synthetic.py -o models/synthetic-trained.safetensors

The defaults are the run docs/int8.md reports (150 iterations, about 7 minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time

import numpy as np

TRAIN_SEED = 100_000
EVAL_SEED = 920_000


def _size(text):
    w, _, h = text.lower().partition("x")
    try:
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 512x256") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True, help="the .safetensors checkpoint to write")
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (poly decay)")
    p.add_argument("--scenes", type=int, default=24, help="training scenes in the pool")
    p.add_argument("--scene-size", type=_size, default=(2048, 1024), metavar="WxH")
    p.add_argument("--network-size", type=_size, default=(1024, 512), metavar="WxH")
    p.add_argument("--crop", type=_size, default=(320, 160), metavar="WxH")
    p.add_argument("--eval-scenes", type=int, default=4, help="held-out scenes scored (0: none)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the scores here")
    args = p.parse_args(argv)
    for name in ("iters", "scenes", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.batch < 2:
        p.error("--batch must be >= 2 (the context block's BatchNorm trains on a batch)")
    if args.eval_scenes < 0:
        p.error("--eval-scenes must be >= 0")
    for name in ("scene_size", "network_size", "crop"):
        w, h = getattr(args, name)
        if w < 32 or h < 32 or (name != "scene_size" and (w % 32 or h % 32)):
            p.error(f"--{name.replace('_', '-')} {w}x{h}: at least 32x32"
                    + ("" if name == "scene_size" else ", multiples of 32 (the network's stride)"))
    if args.crop[0] > args.network_size[0] or args.crop[1] > args.network_size[1]:
        p.error(f"--crop {args.crop[0]}x{args.crop[1]} is larger than --network-size "
                f"{args.network_size[0]}x{args.network_size[1]}")
    return args


def to_network(images, labels, net_size, mean, std):
    """uint8 H x W x 3 scenes + label maps -> normalized N x 3 x h x w floats + N x h x w labels,
    resized as the exported graph resizes (bilinear, align_corners=False)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(np.stack(labels)).long()[:, None].float()
    w, h = net_size
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        y = F.interpolate(y, size=(h, w), mode="nearest")
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return (x - m) / s, y[:, 0].long()


def crops(x, y, crop, batch, gen):
    import torch

    cw, ch = crop
    n, _, h, w = x.shape
    idx = torch.randint(n, (batch,), generator=gen)
    xs, ys = [], []
    for i in idx.tolist():
        top = int(torch.randint(h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(w - cw + 1, (1,), generator=gen))
        xi, yi = x[i, :, top:top + ch, left:left + cw], y[i, top:top + ch, left:left + cw]
        if bool(torch.rand(1, generator=gen) < 0.5):
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def evaluate(model, args, num_classes, mean, std, names):
    """mIoU on held-out scenes, run as the exported graph runs them: resize to the network size,
    logits back to the scene size (bilinear), argmax; scored against the full-size labels."""
    import torch
    import torch.nn.functional as F

    from bisenet_deploy.evaluation.metrics import ConfusionMatrix
    from bisenet_deploy.synthetic import synthetic_scene

    cm = ConfusionMatrix(num_classes)
    model.eval()
    with torch.no_grad():
        for i in range(args.eval_scenes):
            image, label = synthetic_scene(*args.scene_size, seed=EVAL_SEED + i)
            x, _ = to_network([image], [label], args.network_size, mean, std)
            logits = model(x)
            w, h = args.scene_size
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            cm.update(logits[0].argmax(0).numpy(), label, where=f"scene {EVAL_SEED + i}")
    return cm.summary(names)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch
    import torch.nn.functional as F

    from bisenet_deploy.checkpoint import load_model, save_checkpoint
    from bisenet_deploy.checkpoint.matching import build
    from bisenet_deploy.errors import UserError
    from bisenet_deploy.portable.files.ownership import check_replaceable
    from bisenet_deploy.synthetic import synthetic_scene

    try:  # refuse before minutes of training, not after
        check_replaceable(args.output, "safetensors")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json and os.path.lexists(args.json):
        print(f"error: --json {args.json} already exists: choose another path", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    random_init = load_model(None, seed=args.seed)  # what `bisenet-export onnx` starts from
    meta = random_init.metadata
    if meta.channel_order != "rgb":
        raise SystemExit(f"expected an RGB model, got channel order {meta.channel_order}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = build(meta.arch, meta.num_classes, aux=True)
    missing, unexpected = model.load_state_dict(random_init.model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("aux") for k in missing), (missing, unexpected)

    t0 = time.monotonic()
    pool = [synthetic_scene(*args.scene_size, seed=TRAIN_SEED + i) for i in range(args.scenes)]
    x_all, y_all = to_network([p[0] for p in pool], [p[1] for p in pool], args.network_size,
                              meta.mean, meta.std)
    del pool
    print(f"{args.scenes} training scenes ready in {time.monotonic() - t0:.1f} s", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    t0 = time.monotonic()
    for it in range(args.iters):
        for group in opt.param_groups:
            group["lr"] = args.lr * (1 - it / args.iters) ** 0.9
        x, y = crops(x_all, y_all, args.crop, args.batch, gen)
        outs = model(x)
        losses = [F.cross_entropy(o, y, ignore_index=255) for o in outs]
        loss = sum(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it == 0 or (it + 1) % 25 == 0 or it + 1 == args.iters:
            per = (time.monotonic() - t0) / (it + 1)
            print(f"iter {it + 1}/{args.iters} loss {loss.item():.3f} (main "
                  f"{losses[0].item():.3f}) {per:.2f} s/iter", flush=True)
    train_s = time.monotonic() - t0

    model.eval()
    metadata = dataclasses.replace(meta, weights="checkpoint", source="bisenet-deploy")
    save_checkpoint(args.output, model, metadata)
    result = {"checkpoint": args.output, "iters": args.iters, "batch": args.batch,
              "crop": list(args.crop), "train_seconds": round(train_s, 1)}
    if args.eval_scenes:
        summary = evaluate(model, args, meta.num_classes, meta.mean, meta.std,
                           meta.class_names)
        result["eval"] = {"scenes": args.eval_scenes, "first_seed": EVAL_SEED,
                          "miou": summary["miou"], "pixel_accuracy": summary["pixel_accuracy"],
                          "per_class_iou": {c["name"]: c["iou"] for c in summary["per_class"]
                                            if c["iou"] is not None}}
        print(f"held-out mIoU {100 * summary['miou']:.2f}% on {args.eval_scenes} scenes "
              f"(classes present: {summary['classes_present']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
