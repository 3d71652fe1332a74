"""Attention layers: MultiHeadAttention over the fused native attention op, a post-norm (or
pre-norm) TransformerEncoder block, and PositionalEmbedding (token + learned position).
"""

import math

import lamina
from lamina import activations, initializers, regularizers
from lamina.layers.base import Layer
from lamina.layers.core import Dense, Dropout
from lamina.layers.normalization import LayerNormalization


def _bool(mask):
    return mask if mask.dtype == "bool" else mask.astype("bool")


class MultiHeadAttention(Layer):
    """Multi-head attention as in Keras: ``mha(query, value, key=None, ...)``.

    Query, key and value are projected to `num_heads` heads, attended with
    ``lamina.scaled_dot_product_attention`` (one fused op; scale 1/sqrt(key_dim)), and the
    heads are projected back to the query's feature size (or `output_shape`).

    Args:
        num_heads: Number of heads.
        key_dim: Size of each head's queries and keys.
        value_dim: Size of each head's values (default key_dim).
        dropout: Dropout on the attention weights during training.
        use_bias: Whether the projections have biases.
        output_shape: Size of the output's last axis (default: the query's).

    Call arguments:
        query: (batch, Lq, Dq). value: (batch, Lk, Dv) (default: query, self-attention).
        key: (batch, Lk, Dk) (default: value).
        attention_mask: Bool (batch, Lq, Lk) (or broadcastable), True where a query may
            attend to a key.
        use_causal_mask: Query i attends to keys j <= i only.
        return_attention_scores: Also return the (batch, heads, Lq, Lk) attention weights
            (computed with plain ops instead of the fused one).
        mask: A propagated timestep mask ([query_mask, value_mask] or the value's); the
            value's (key padding) mask keeps queries from attending to padded keys.

    Weights (Keras' EinsumDense layouts): query/key/value kernels (D, heads, dim) with biases
    (heads, dim); the output kernel (heads, value_dim, D_out) with bias (D_out,).
    """

    supports_masking = True

    _config_weight_settings = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        for what, v in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"MultiHeadAttention: {what} must be a positive int, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = int(value_dim) if value_dim is not None else key_dim
        self.dropout, self.use_bias = float(dropout), use_bias
        self.output_shape_arg = int(output_shape) if output_shape is not None else None
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def __call__(self, query, value=None, key=None, training=False, **kwargs):
        if isinstance(query, (list, tuple)):  # [query, value(, key)], as a functional graph passes them
            inputs = list(query)
        else:
            inputs = [query, value if value is not None else query] + ([key] if key is not None else [])
        return super().__call__(inputs, training=training, **kwargs)

    def _projection(self, name, features, heads, dim):
        kernel = self.add_weight(f"{name}_kernel", (features, heads, dim), self.kernel_initializer,
                                 regularizer=self.kernel_regularizer)
        bias = (self.add_weight(f"{name}_bias", (heads, dim), self.bias_initializer, regularizer=self.bias_regularizer)
                if self.use_bias else None)
        return kernel, bias

    def build(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) not in (2, 3) or any(len(s) != 3 for s in input_shape):
            raise ValueError(f"MultiHeadAttention '{self.name}' takes query and value of shape (batch, length, "
                             f"features), got {input_shape}")
        q_shape, v_shape = input_shape[0], input_shape[1]
        k_shape = input_shape[2] if len(input_shape) == 3 else v_shape
        h = self.num_heads
        self.query_kernel, self.query_bias = self._projection("query", q_shape[-1], h, self.key_dim)
        self.key_kernel, self.key_bias = self._projection("key", k_shape[-1], h, self.key_dim)
        self.value_kernel, self.value_bias = self._projection("value", v_shape[-1], h, self.value_dim)
        out = self.output_shape_arg or q_shape[-1]
        self.output_kernel = self.add_weight("output_kernel", (h, self.value_dim, out), self.kernel_initializer,
                                             regularizer=self.kernel_regularizer)
        self.output_bias = (self.add_weight("output_bias", (out,), self.bias_initializer,
                                            regularizer=self.bias_regularizer) if self.use_bias else None)

    def _check_input_shape(self, shape):
        if not isinstance(shape, list) or len(shape) != len(self.input_shape) or \
                any(len(s) != 3 or s[-1] != e[-1] for s, e in zip(shape, self.input_shape)):
            raise ValueError(f"Inputs of layer '{self.name}' have shapes {shape}, but the layer was built for "
                             f"{self.input_shape}")

    def _heads(self, x, kernel, bias):
        """(B, L, D) -> (B, heads, L, dim)."""
        heads, dim = kernel.shape[1], kernel.shape[2]
        y = x @ lamina.reshape(self.cast(kernel), (kernel.shape[0], heads * dim))
        if bias is not None:
            y = y + lamina.reshape(self.cast(bias), (heads * dim,))
        return lamina.permute(lamina.reshape(y, (x.shape[0], x.shape[1], heads, dim)), (0, 2, 1, 3))

    def _mask(self, query, value, mask, attention_mask):
        """A bool mask broadcastable to (B, heads, Lq, Lk), or None."""
        out = None
        if attention_mask is not None:
            attention_mask = _bool(lamina.tensor(attention_mask) if not isinstance(attention_mask, lamina.Tensor)
                                   else attention_mask)
            out = lamina.unsqueeze(attention_mask, 1) if attention_mask.ndim == 3 else attention_mask
        value_mask = mask[1] if isinstance(mask, (list, tuple)) else mask
        if value_mask is not None:
            if tuple(value_mask.shape) != tuple(value.shape[:2]):
                raise ValueError(f"MultiHeadAttention '{self.name}': mask of shape {tuple(value_mask.shape)} does "
                                 f"not match the value's (batch, length) {tuple(value.shape[:2])}")
            keys = lamina.reshape(_bool(value_mask), (value.shape[0], 1, 1, value.shape[1]))
            out = keys if out is None else lamina.logical_and(out, keys)
        return out

    def call(self, inputs, training=False, mask=None, attention_mask=None, use_causal_mask=False,
             return_attention_scores=False):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) > 2 else value
        q = self._heads(query, self.query_kernel, self.query_bias)
        k = self._heads(key, self.key_kernel, self.key_bias)
        v = self._heads(value, self.value_kernel, self.value_bias)
        bool_mask = self._mask(query, value, mask, attention_mask)
        dropout = self.dropout if training else 0.0
        scores = None
        if return_attention_scores:
            attended, scores = self._attend_composite(q, k, v, bool_mask, use_causal_mask, dropout)
        else:
            attended = lamina.scaled_dot_product_attention(q, k, v, bool_mask, use_causal_mask, dropout)
        b, lq = query.shape[0], query.shape[1]
        merged = lamina.reshape(lamina.permute(attended, (0, 2, 1, 3)), (b, lq, self.num_heads * self.value_dim))
        out = merged @ lamina.reshape(self.cast(self.output_kernel), (self.num_heads * self.value_dim, -1))
        if self.output_bias is not None:
            out = out + self.cast(self.output_bias)
        return [out, scores] if return_attention_scores else out

    def _attend_composite(self, q, k, v, mask, causal, dropout):
        logits = (q @ lamina.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.key_dim))
        lq, lk = logits.shape[-2], logits.shape[-1]
        if causal:
            import numpy as np

            tri = lamina.tensor(np.tril(np.ones((lq, lk), dtype=bool)))
            mask = tri if mask is None else lamina.logical_and(mask, tri)
        if mask is not None:
            logits = lamina.where(mask, logits, lamina.full((), -1e9, dtype=logits.dtype))
        weights = lamina.softmax(logits, -1)
        dropped = weights * lamina.dropout_mask(weights, dropout) if dropout > 0.0 else weights
        return dropped @ v, weights

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else None

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_shape_arg}


class TransformerEncoder(Layer):
    """A Transformer encoder block over (batch, length, features); the output has the same shape.

    Post-norm (the original Transformer and KerasHub's default)::

        x = norm1(x + dropout(self_attention(x)))
        y = norm2(x + dropout(dense2(dropout(activation(dense1(x))))))

    With ``normalize_first=True`` the norms come before each sub-block (pre-norm).

    Args:
        intermediate_dim: Width of the feed-forward hidden layer.
        num_heads: Attention heads; key_dim is features // num_heads unless given.
        dropout: Dropout after attention, in the feed-forward network, and on the attention
            weights.
        activation: Feed-forward activation.
        layer_norm_epsilon: LayerNormalization epsilon.
        normalize_first: Pre-norm instead of post-norm.
        key_dim: Size of each attention head.

    A propagated padding mask (from ``Embedding`` / ``PositionalEmbedding`` with
    ``mask_zero=True``) keeps every query from attending to padded positions; call with
    ``use_causal_mask=True`` for decoder-style causal attention.
    """

    supports_masking = True

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="relu", layer_norm_epsilon=1e-5,
                 normalize_first=False, key_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim, self.num_heads = int(intermediate_dim), int(num_heads)
        self.dropout, self.activation = float(dropout), activations.get(activation)
        self.layer_norm_epsilon, self.normalize_first = float(layer_norm_epsilon), bool(normalize_first)
        self.key_dim = int(key_dim) if key_dim is not None else None

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"TransformerEncoder '{self.name}' takes (batch, length, features), got {input_shape}")
        features = input_shape[-1]
        key_dim = self.key_dim or max(features // self.num_heads, 1)
        # Fixed names: weight paths are then the same in every model ('block/self_attention/...').
        self.self_attention = MultiHeadAttention(self.num_heads, key_dim, dropout=self.dropout, dtype=self.dtype_policy.name,
                                                 name="self_attention")
        self.attention_norm = LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy.name,
                                                 name="self_attention_norm")
        self.intermediate = Dense(self.intermediate_dim, self.activation, dtype=self.dtype_policy.name,
                                  name="feedforward_intermediate")
        self.output_dense = Dense(features, dtype=self.dtype_policy.name, name="feedforward_output")
        self.feedforward_norm = LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy.name,
                                                   name="feedforward_norm")
        self.dropout_layer = Dropout(self.dropout, name="dropout")
        # Built here for any length (None), so that later calls may use other lengths.
        seq = (None, None, features)
        self.build_sublayer(self.self_attention, [seq, seq])
        self.build_sublayer(self.attention_norm, seq)
        self.build_sublayer(self.intermediate, seq)
        self.build_sublayer(self.output_dense, (None, None, self.intermediate_dim))
        self.build_sublayer(self.feedforward_norm, seq)

    def _check_input_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.input_shape[-1]:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer expects "
                             f"(batch, length, {self.input_shape[-1]})")

    def call(self, x, training=False, mask=None, use_causal_mask=False):
        residual = x
        h = self.attention_norm(x) if self.normalize_first else x
        h = self.self_attention(h, h, training=training, mask=mask, use_causal_mask=use_causal_mask)
        x = residual + self.dropout_layer(h, training=training)
        if not self.normalize_first:
            x = self.attention_norm(x)
        residual = x
        h = self.feedforward_norm(x) if self.normalize_first else x
        h = self.dropout_layer(self.intermediate(h), training=training)
        x = residual + self.dropout_layer(self.output_dense(h), training=training)
        return x if self.normalize_first else self.feedforward_norm(x)

    def get_config(self):
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "activation": activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon, "normalize_first": self.normalize_first,
                "key_dim": self.key_dim}


class PositionalEmbedding(Layer):
    """Token embedding plus a learned position embedding: (batch, length) ints -> (batch, length, dim).

    Args:
        sequence_length: The longest sequence (rows of the position table); shorter inputs
            use the first rows.
        vocabulary_size: Number of token ids.
        embedding_dim: Size of each vector.
        mask_zero: Token 0 is padding: the output carries a mask for the following layers.
    """

    def __init__(self, sequence_length, vocabulary_size, embedding_dim, mask_zero=False,
                 embeddings_initializer="uniform", position_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length, self.vocabulary_size = int(sequence_length), int(vocabulary_size)
        self.embedding_dim, self.mask_zero = int(embedding_dim), bool(mask_zero)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.position_initializer = initializers.get(position_initializer)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"PositionalEmbedding '{self.name}' takes (batch, length) token ids, got {input_shape}")
        self.token_embeddings = self.add_weight("token_embeddings", (self.vocabulary_size, self.embedding_dim),
                                                self.embeddings_initializer)
        self.position_embeddings = self.add_weight("position_embeddings", (self.sequence_length, self.embedding_dim),
                                                   self.position_initializer)

    def _check_input_shape(self, shape):
        if len(shape) != 2 or shape[1] > self.sequence_length:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}; expected (batch, length) "
                             f"with length <= sequence_length={self.sequence_length}")

    def call(self, x, training=False):
        if x.shape[1] > self.sequence_length:
            raise ValueError(f"PositionalEmbedding '{self.name}': sequences of length {x.shape[1]} exceed "
                             f"sequence_length={self.sequence_length}")
        if x.dtype not in ("int64", "int32"):
            x = x.astype("int64")
        tokens = lamina.take(self.cast(self.token_embeddings), x, 0)
        return tokens + self.cast(self.position_embeddings)[: x.shape[1]]

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return lamina.not_equal(inputs, lamina.zeros((), dtype=inputs.dtype))

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "position_initializer": initializers.serialize(self.position_initializer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("embeddings_initializer", "position_initializer"):
            config[key] = initializers.deserialize(config[key])
        return cls(**config)
