-- streamscore_score_batch: the forward pass of one model version over a whole batch, in PL/Python.
-- One call scores every image it is given (the caller wraps it in INSERT … SELECT). It mirrors
-- streamscore.model.reference.forward line by line:
--     x = pixels * input_scale;  for each layer: x = act(x @ W + b)
-- and, for a layered model (manifest "layers" names conv2d/maxpool2d/flatten), forward_layers:
-- images channels first (c, n, h, w), conv2d as Wᵀ · patches (+ the maxpool right after it taken
-- before bias and relu), in chunks of 256 images.
-- The weights are read from model_layers once per (name, version) and kept in the session's GD
-- under "streamscore_models", keyed (schema, name, version): at most CACHED_VERSIONS of them, the
-- least recently used dropped first (streamscore/backends/model_cache.py: the same bound), so a
-- session that lives through thousands of hot swaps keeps a few models, not all of them.
-- streamscore_cached_models() (below) lists them. The model's sha256 is re-read on every call (one
-- indexed row), so a reinstalled version is reloaded. Errors: SQLSTATE P0002 when the model is not
-- installed, 22023 for a malformed image.
-- SET search_path FROM CURRENT pins the tables of the schema the function was created in.
CREATE OR REPLACE FUNCTION streamscore_score_batch(
    image_ids text[], pixels bytea[], model_name text, model_version integer
) RETURNS TABLE (image_id text, predicted smallint, probabilities real[])
LANGUAGE plpython3u STABLE STRICT
SET search_path FROM CURRENT
AS $$
import json
import os

# one BLAS thread per session unless the server's environment says otherwise: OpenBLAS keeps its extra
# threads spinning after each product, CPU the other sessions and the consumers need (docs/decisions.md)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np

if "head" not in SD:
    SD["head"] = plpy.prepare(
        # the manifest is stored as a JSON text inside jsonb (a string); older rows may be objects
        "SELECT sha256, activations, input_scale, CASE jsonb_typeof(manifest) WHEN 'string' "
        "THEN ((manifest #>> '{}')::jsonb) -> 'layers' ELSE manifest -> 'layers' END AS layers "
        "FROM models WHERE name = $1 AND version = $2",
        ["text", "integer"])
    SD["layers"] = plpy.prepare(
        "SELECT inputs, outputs, weights, biases FROM model_layers "
        "WHERE name = $1 AND version = $2 ORDER BY layer", ["text", "integer"])
    SD["schema"] = plpy.execute("SELECT current_schema() AS s")[0]["s"]
CACHED_VERSIONS = 4

def sigmoid(z):
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

def softmax(z):
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

ACTIVATIONS = {
    "sigmoid": sigmoid,
    "relu": lambda z: np.maximum(z, np.float32(0)),
    "tanh": lambda z: np.tanh(z).astype(np.float32),
    "softmax": softmax,
    "identity": lambda z: z,
}

def patches(x, kernel):
    kh, kw = kernel
    rows, cols = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    stacked = np.stack([x[:, :, i:i + rows, j:j + cols] for i in range(kh) for j in range(kw)])
    return stacked.reshape(kh * kw * x.shape[0], -1)

def maxpool(x, pool):
    ph, pw = pool
    rows, cols = x.shape[2] // ph, x.shape[3] // pw
    result = x[:, :, 0:rows * ph:ph, 0:cols * pw:pw].copy()
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(result, x[:, :, i:rows * ph:ph, j:cols * pw:pw], out=result)
    return result

def conv2d(x, w, b, kernel, activation, pool):
    n, rows, cols = x.shape[1], x.shape[2] - kernel[0] + 1, x.shape[3] - kernel[1] + 1
    product = (w.T @ patches(x, kernel)).reshape(w.shape[1], n, rows, cols)
    if pool is not None:
        product = maxpool(product, pool)
    product += b[:, None, None, None]
    return ACTIVATIONS[activation](product)

POOL_FIRST = ("relu", "identity")

def forward_layers(x, model):
    spec = model["spec"]
    if spec[0]["type"] != "dense":
        x = x.reshape(1, -1, 28, 28)
    arrays = iter(model["layers"])
    pooled = False
    for index, layer in enumerate(spec):
        kind = layer["type"]
        if kind == "conv2d":
            w, b = next(arrays)
            after = spec[index + 1] if index + 1 < len(spec) else None
            pooled = after is not None and after["type"] == "maxpool2d" and layer["activation"] in POOL_FIRST
            x = conv2d(x, w, b, layer["kernel"], layer["activation"], after["pool"] if pooled else None)
        elif kind == "maxpool2d" and pooled:
            pooled = False
        elif kind == "maxpool2d":
            x = maxpool(x, layer["pool"])
        elif kind == "flatten":
            x = x.transpose(1, 2, 3, 0).reshape(x.shape[1], -1)
        elif kind == "dense":
            w, b = next(arrays)
            x = ACTIVATIONS[layer["activation"]](x @ w + b)
        else:
            plpy.error("layer type %r cannot be scored here" % kind, sqlstate="0A000")
    return x

head = plpy.execute(SD["head"], [model_name, model_version])
if not head:
    plpy.error("model %s:v%d is not installed in this schema" % (model_name, model_version),
               sqlstate="P0002")
sha256 = head[0]["sha256"]
cache = GD.setdefault("streamscore_models", {})  # insertion order = least recently used first
key = (SD["schema"], model_name, model_version)
model = cache.pop(key, None)
if model is None or model["sha256"] != sha256:
    layers = [
        (np.asarray(row["weights"], np.float32).reshape(row["inputs"], row["outputs"]),
         np.asarray(row["biases"], np.float32))
        for row in plpy.execute(SD["layers"], [model_name, model_version])
    ]
    spec = json.loads(head[0]["layers"]) if head[0]["layers"] else None
    model = {"sha256": sha256, "layers": layers, "activations": list(head[0]["activations"]),
             "input_scale": np.float32(head[0]["input_scale"]),
             "spec": spec if spec and isinstance(spec[0], dict) else None}
    while len(cache) >= CACHED_VERSIONS:  # champion, shadow and the next version are enough
        cache.pop(next(iter(cache)))
cache[key] = model  # (re)inserted last: the most recently used

if len(image_ids) != len(pixels):
    plpy.error("%d image ids for %d images" % (len(image_ids), len(pixels)), sqlstate="22023")
if not image_ids:
    return []
bad = [i for i, p in enumerate(pixels) if p is None or len(p) != 784]
if bad:
    plpy.error("image %s does not have 784 pixels" % image_ids[bad[0]], sqlstate="22023")

x = np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, 784).astype(np.float32)
x = x * model["input_scale"]
if model["spec"] is not None:
    x = np.concatenate([forward_layers(x[start:start + 256], model) for start in range(0, len(x), 256)])
else:
    for (w, b), activation in zip(model["layers"], model["activations"]):
        x = ACTIVATIONS[activation](x @ w + b)
predicted = np.argmax(x, axis=1)
return zip(image_ids, predicted.tolist(), x.tolist())
$$;

-- streamscore_cached_models: the model versions whose weights this session holds (the GD cache of
-- streamscore_score_batch above), least recently used first. Monitoring and tests: it never
-- lists more than CACHED_VERSIONS rows, however many versions were swapped in.
CREATE OR REPLACE FUNCTION streamscore_cached_models()
RETURNS TABLE (schema_name text, model_name text, model_version integer)
LANGUAGE plpython3u VOLATILE
AS $$
return [list(key) for key in GD.get("streamscore_models", {})]
$$;
