"""The mechanism every analysis runs on: token ids and padding, position rules and the token
state, the one forward runner (plain, over a shared prefix, with or without cache) and its fast
path past the bridge's wrappers, KV reuse across models, and the fast paths of the push sweep
(layer skipping, the screened argmax)."""
