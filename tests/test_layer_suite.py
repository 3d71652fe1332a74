"""Every layer in lamina.layers through run_layer_test, plus behaviours the table cannot show
(masking, merge modes, layouts, causal attention, Keras output sizes, summaries)."""

import lamina
import numpy as np
import pytest
from lamina import layers
from layer_testing import run_layer_test

# (id, class, init kwargs, input shape(s), output shape(s), trainable, non-trainable, extra run_layer_test kwargs)
CASES = [
    ("dense", layers.Dense, {"units": 3, "activation": "tanh"}, (2, 4), (2, 3), 2, 0, {}),
    ("dense_3d", layers.Dense, {"units": 3, "use_bias": False}, (2, 3, 4), (2, 3, 3), 1, 0, {}),
    ("activation", layers.Activation, {"activation": "softplus"}, (2, 5), (2, 5), 0, 0, {}),
    ("dropout", layers.Dropout, {"rate": 0.5}, (2, 5), (2, 5), 0, 0, {}),
    ("flatten", layers.Flatten, {}, (2, 3, 4), (2, 12), 0, 0, {}),
    ("reshape", layers.Reshape, {"target_shape": (2, -1)}, (2, 3, 4), (2, 2, 6), 0, 0, {}),
    ("embedding", layers.Embedding, {"input_dim": 10, "output_dim": 3}, (2, 5), (2, 5, 3), 1, 0,
     {"input_dtype": "int64"}),
    ("masking", layers.Masking, {"mask_value": 0.0}, (2, 3, 4), (2, 3, 4), 0, 0, {}),
    ("batch_norm", layers.BatchNormalization, {}, (4, 3), (4, 3), 2, 2, {}),
    ("batch_norm_nchw", layers.BatchNormalization, {"axis": 1}, (4, 2, 3, 3), (4, 2, 3, 3), 2, 2, {}),
    ("layer_norm", layers.LayerNormalization, {}, (2, 3, 4), (2, 3, 4), 2, 0, {}),
    ("simple_rnn", layers.SimpleRNN, {"units": 3, "return_sequences": True}, (2, 4, 3), (2, 4, 3), 3, 0, {}),
    ("random_flip", layers.RandomFlip, {"seed": 1}, (2, 4, 4, 1), (2, 4, 4, 1), 0, 0, {}),
    ("random_translation", layers.RandomTranslation, {"height_factor": 0.2, "width_factor": 0.2, "seed": 1},
     (2, 5, 5, 1), (2, 5, 5, 1), 0, 0, {}),
    ("gaussian_noise", layers.GaussianNoise, {"stddev": 0.1}, (2, 5), (2, 5), 0, 0, {}),
    ("conv1d", layers.Conv1D, {"filters": 3, "kernel_size": 3}, (2, 6, 2), (2, 4, 3), 2, 0, {}),
    ("conv1d_causal_dilated", layers.Conv1D, {"filters": 2, "kernel_size": 2, "padding": "causal",
                                              "dilation_rate": 2}, (2, 5, 2), (2, 5, 2), 2, 0, {}),
    ("conv1d_same_strided", layers.Conv1D, {"filters": 2, "kernel_size": 3, "padding": "same", "strides": 2},
     (2, 7, 2), (2, 4, 2), 2, 0, {}),
    ("conv2d", layers.Conv2D, {"filters": 3, "kernel_size": 3, "activation": "relu"}, (2, 5, 5, 2), (2, 3, 3, 3),
     2, 0, {}),
    ("conv2d_same_strided", layers.Conv2D, {"filters": 2, "kernel_size": (3, 2), "strides": 2, "padding": "same"},
     (2, 5, 6, 2), (2, 3, 3, 2), 2, 0, {}),
    ("conv2d_dilated_groups", layers.Conv2D, {"filters": 4, "kernel_size": 2, "dilation_rate": 2, "groups": 2},
     (2, 5, 5, 4), (2, 3, 3, 4), 2, 0, {}),
    ("conv2d_channels_first", layers.Conv2D, {"filters": 2, "kernel_size": 2, "data_format": "channels_first",
                                              "use_bias": False}, (2, 3, 4, 4), (2, 2, 3, 3), 1, 0, {}),
    ("conv2d_transpose_same", layers.Conv2DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2,
                                                       "padding": "same"}, (2, 3, 3, 2), (2, 6, 6, 2), 2, 0, {}),
    ("conv2d_transpose_valid", layers.Conv2DTranspose, {"filters": 2, "kernel_size": 4, "strides": 2},
     (2, 3, 3, 2), (2, 8, 8, 2), 2, 0, {}),
    ("max_pool1d", layers.MaxPooling1D, {"pool_size": 2}, (2, 6, 3), (2, 3, 3), 0, 0, {}),
    ("avg_pool1d_same", layers.AveragePooling1D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 3),
     (2, 3, 3), 0, 0, {}),
    ("max_pool2d", layers.MaxPooling2D, {"pool_size": 2}, (2, 4, 5, 2), (2, 2, 2, 2), 0, 0, {}),
    ("max_pool2d_same", layers.MaxPooling2D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 5, 2),
     (2, 3, 3, 2), 0, 0, {}),
    ("avg_pool2d", layers.AveragePooling2D, {"pool_size": 2, "data_format": "channels_first"}, (2, 2, 4, 4),
     (2, 2, 2, 2), 0, 0, {}),
    ("avg_pool2d_same", layers.AveragePooling2D, {"pool_size": 2, "padding": "same"}, (2, 5, 5, 2), (2, 3, 3, 2),
     0, 0, {}),
    ("global_avg_pool1d", layers.GlobalAveragePooling1D, {}, (2, 5, 3), (2, 3), 0, 0, {}),
    ("global_avg_pool2d", layers.GlobalAveragePooling2D, {}, (2, 3, 3, 4), (2, 4), 0, 0, {}),
    ("global_avg_pool2d_nchw", layers.GlobalAveragePooling2D, {"data_format": "channels_first", "keepdims": True},
     (2, 4, 3, 3), (2, 4, 1, 1), 0, 0, {}),
    ("upsampling2d", layers.UpSampling2D, {"size": (2, 3)}, (2, 2, 2, 3), (2, 4, 6, 3), 0, 0, {}),
    ("lstm", layers.LSTM, {"units": 4}, (2, 5, 3), (2, 4), 3, 0, {}),
    ("lstm_states_backwards", layers.LSTM, {"units": 3, "return_sequences": True, "return_state": True,
                                            "go_backwards": True}, (2, 4, 3), [(2, 4, 3), (2, 3), (2, 3)], 3, 0, {}),
    ("gru", layers.GRU, {"units": 4, "return_sequences": True}, (2, 5, 3), (2, 5, 4), 3, 0, {}),
    ("gru_state_no_bias", layers.GRU, {"units": 3, "return_state": True, "use_bias": False}, (2, 4, 2),
     [(2, 3), (2, 3)], 2, 0, {}),
    ("bidirectional_concat", layers.Bidirectional, {"layer": layers.LSTM(3, return_sequences=True)}, (2, 4, 2),
     (2, 4, 6), 6, 0, {}),
    ("bidirectional_ave_gru", layers.Bidirectional, {"layer": layers.GRU(3), "merge_mode": "ave"}, (2, 4, 2),
     (2, 3), 6, 0, {}),
    ("multi_head_attention_self", layers.MultiHeadAttention, {"num_heads": 2, "key_dim": 3}, [(2, 4, 5), (2, 4, 5)],
     (2, 4, 5), 8, 0, {}),
    ("multi_head_attention_cross_causal", layers.MultiHeadAttention,
     {"num_heads": 2, "key_dim": 2, "value_dim": 3, "output_shape": 4}, [(2, 3, 5), (2, 3, 6)], (2, 3, 4), 8, 0,
     {"call_kwargs": {"use_causal_mask": True}}),
    ("transformer_encoder", layers.TransformerEncoder, {"intermediate_dim": 8, "num_heads": 2, "dropout": 0.1},
     (2, 4, 6), (2, 4, 6), 16, 0, {}),
    ("transformer_encoder_prenorm", layers.TransformerEncoder,
     {"intermediate_dim": 6, "num_heads": 1, "normalize_first": True}, (2, 3, 4), (2, 3, 4), 16, 0, {}),
    ("positional_embedding", layers.PositionalEmbedding,
     {"sequence_length": 6, "vocabulary_size": 10, "embedding_dim": 4}, (2, 5), (2, 5, 4), 2, 0,
     {"input_dtype": "int64"}),
    ("add", layers.Add, {}, [(2, 3), (2, 3), (2, 3)], (2, 3), 0, 0, {}),
    ("subtract", layers.Subtract, {}, [(2, 3), (2, 3)], (2, 3), 0, 0, {}),
    ("multiply", layers.Multiply, {}, [(2, 3, 2), (2, 3, 2)], (2, 3, 2), 0, 0, {}),
    ("average", layers.Average, {}, [(2, 3), (2, 3)], (2, 3), 0, 0, {}),
    ("concatenate", layers.Concatenate, {"axis": 1}, [(2, 3, 2), (2, 1, 2)], (2, 4, 2), 0, 0, {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer(case):
    _, cls, kwargs, in_shape, out_shape, trainable, frozen, extra = case
    run_layer_test(cls, kwargs, in_shape, out_shape, trainable, frozen, **extra)


def test_every_layer_is_covered():
    tested = {c[1].__name__ for c in CASES}
    exported = {n for n in layers.__all__ if n not in ("Input", "Layer", "RandomNoise")}
    assert exported <= tested, f"layers without a run_layer_test case: {sorted(exported - tested)}"


# ----- masking ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU])
def test_masked_recurrence_equals_the_unpadded_sequence(rnn):
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]])
    model = lamina.Sequential([lamina.Input((None,), dtype="int64"), layers.Embedding(10, 4, mask_zero=True),
                               rnn(3)])
    padded = model.predict(tokens)
    np.testing.assert_allclose(padded[0], model.predict(tokens[:1, :3])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded[1], model.predict(tokens[1:])[0], rtol=1e-5, atol=1e-6)


def test_masking_layer_feeds_a_bidirectional_gru():
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    x[0, 3:] = 0.0
    model = lamina.Sequential([lamina.Input((None, 3)), layers.Masking(), layers.Bidirectional(layers.GRU(2))])
    np.testing.assert_allclose(model.predict(x)[0], model.predict(x[:1, :3])[0], rtol=1e-5, atol=1e-6)


def test_transformer_padding_mask_ignores_padding():
    tokens = np.array([[5, 6, 7, 0, 0]])
    x = lamina.Input((None,), dtype="int64")
    h = layers.PositionalEmbedding(5, 10, 8, mask_zero=True)(x)
    h = layers.TransformerEncoder(16, 2)(h)
    model = lamina.Model(x, layers.GlobalAveragePooling1D()(h))
    np.testing.assert_allclose(model.predict(tokens), model.predict(tokens[:, :3]), rtol=1e-5, atol=1e-6)


# ----- recurrent and attention details ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(mode):
    x = lamina.tensor(np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32"))
    bi = layers.Bidirectional(layers.LSTM(2, return_sequences=True), merge_mode=mode)
    out = bi(x)
    fw = bi.forward_layer(x).numpy()
    bw = bi.backward_layer(x).numpy()[:, ::-1]  # back in time order
    expected = {"concat": np.concatenate([fw, bw], -1), "sum": fw + bw, "mul": fw * bw, "ave": (fw + bw) / 2}
    if mode is None:
        np.testing.assert_allclose(out[0].numpy(), fw, rtol=1e-6)
        np.testing.assert_allclose(out[1].numpy(), bw, rtol=1e-6)
    else:
        np.testing.assert_allclose(out.numpy(), expected[mode], rtol=1e-5, atol=1e-7)


def test_lstm_initial_state_and_go_backwards():
    x = lamina.tensor(np.random.default_rng(2).normal(size=(2, 4, 3)).astype("float32"))
    lstm = layers.LSTM(2, return_state=True)
    out, _, _ = lstm(x)
    again, _, _ = lstm(x[:, 2:], initial_state=[lstm(x[:, :2])[1], lstm(x[:, :2])[2]])
    np.testing.assert_allclose(again.numpy(), out.numpy(), rtol=1e-5, atol=1e-6)
    backwards = layers.LSTM.from_config({**lstm.get_config(), "go_backwards": True, "name": "b"})
    backwards(x)
    backwards.set_weights(lstm.get_weights())
    reversed_x = lamina.tensor(x.numpy()[:, ::-1].copy())
    np.testing.assert_allclose(backwards(x)[0].numpy(), lstm(reversed_x)[0].numpy(), rtol=1e-5, atol=1e-6)


def test_causal_attention_does_not_look_ahead():
    rng = np.random.default_rng(3)
    mha = layers.MultiHeadAttention(2, 3)
    x = rng.normal(size=(1, 5, 4)).astype("float32")
    y = x.copy()
    y[:, 3:] = rng.normal(size=(1, 2, 4))
    a = mha(lamina.tensor(x), lamina.tensor(x), use_causal_mask=True).numpy()
    b = mha(lamina.tensor(y), lamina.tensor(y), use_causal_mask=True).numpy()
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_attention_mask_and_scores_agree_with_the_fused_path():
    rng = np.random.default_rng(4)
    q = lamina.tensor(rng.normal(size=(2, 3, 4)).astype("float32"))
    v = lamina.tensor(rng.normal(size=(2, 5, 4)).astype("float32"))
    keep = rng.random((2, 3, 5)) < 0.6
    keep[:, :, 0] = True
    mha = layers.MultiHeadAttention(2, 2)
    fused = mha(q, v, attention_mask=lamina.tensor(keep)).numpy()
    out, scores = mha(q, v, attention_mask=lamina.tensor(keep), return_attention_scores=True)
    np.testing.assert_allclose(out.numpy(), fused, rtol=1e-5, atol=1e-6)
    s = scores.numpy()
    assert s.shape == (2, 2, 3, 5)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-5)
    assert np.all(s[np.broadcast_to(~keep[:, None], s.shape)] < 1e-6)


def test_positional_embedding_shorter_sequences_use_the_first_positions():
    emb = layers.PositionalEmbedding(6, 10, 3)
    tokens = np.array([[1, 2, 3, 4]])
    full = emb(lamina.tensor(tokens)).numpy()
    np.testing.assert_allclose(emb(lamina.tensor(tokens[:, :2])).numpy(), full[:, :2])
    with pytest.raises(ValueError, match="sequence_length"):
        emb(lamina.tensor(np.ones((1, 7), np.int64)))


# ----- convolution and pooling layouts ---------------------------------------------------------
def test_conv2d_channels_first_equals_channels_last():
    x = np.random.default_rng(5).normal(size=(2, 6, 5, 3)).astype("float32")
    last = layers.Conv2D(4, 3, strides=2, padding="same")
    first = layers.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")
    y_last = last(lamina.tensor(x)).numpy()
    first(lamina.tensor(x.transpose(0, 3, 1, 2).copy()))
    first.set_weights(last.get_weights())
    y_first = first(lamina.tensor(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(y_first.transpose(0, 2, 3, 1), y_last, rtol=1e-5, atol=1e-6)


def test_conv_layers_match_pytorch_with_keras_kernels():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 7, 7, 3))
    conv = layers.Conv2D(4, (3, 2), dilation_rate=(1, 2), dtype="float64")
    got = conv(lamina.tensor(x)).numpy()
    kernel, bias = conv.get_weights()
    ref = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(kernel).permute(3, 2, 0, 1),
                                     torch.tensor(bias), dilation=(1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    tconv = layers.Conv2DTranspose(2, 3, strides=2, dtype="float64")
    got = tconv(lamina.tensor(x)).numpy()
    kernel, bias = tconv.get_weights()  # (kh, kw, filters, in)
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x).permute(0, 3, 1, 2),
                                               torch.tensor(kernel).permute(3, 2, 0, 1), torch.tensor(bias),
                                               stride=2).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel,stride", [(1, 1), (2, 2), (3, 2), (4, 2), (5, 3), (1, 3)])
def test_conv2d_transpose_output_sizes_follow_keras(kernel, stride):
    for padding in ("valid", "same"):
        layer = layers.Conv2DTranspose(1, kernel, strides=stride, padding=padding)
        out = layer(lamina.zeros((1, 4, 5, 1))).shape
        size = (lambda n: n * stride) if padding == "same" else (lambda n: n * stride + max(kernel - stride, 0))
        assert tuple(out) == (1, size(4), size(5), 1), (padding, kernel, stride)


def _pool_reference(x, k, s, mode):
    """TensorFlow 'same' pooling on (n, h, w, c): padding ignored."""
    n, h, w, c = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + k - h, 0) // 2, max((ow - 1) * s + k - w, 0) // 2
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            win = x[:, max(i * s - ph, 0):i * s - ph + k, max(j * s - pw, 0):j * s - pw + k]
            out[:, i, j] = win.max((1, 2)) if mode == "max" else win.mean((1, 2))
    return out


@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "avg")])
def test_same_pooling_ignores_the_padding(cls, mode):
    x = np.random.default_rng(7).normal(size=(2, 6, 7, 2)) - 3.0  # negative: a zero pad would win a max
    got = cls(3, 2, padding="same", dtype="float64")(lamina.tensor(x)).numpy()
    np.testing.assert_allclose(got, _pool_reference(x, 3, 2, mode), rtol=1e-12)


# ----- summaries -------------------------------------------------------------------------------
class _Subclassed(lamina.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, padding="same")
        self.pool = layers.GlobalAveragePooling2D()
        self.unused = layers.Dense(7)
        self.head = layers.Dense(2)

    def call(self, x, training=False):
        return self.head(self.pool(self.conv(x)))


def test_summary_of_subclassed_and_functional_models(capsys):
    model = _Subclassed()
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    model(np.zeros((1, 5, 5, 3), np.float32))
    model.summary()
    text = capsys.readouterr().out
    assert "conv2d" in text and "(None, 5, 5, 4)" in text and "(None, 4)" in text and "(None, 2)" in text
    assert "(unbuilt)" in text and "Total params: 122" in text
    x = lamina.Input((6, 3))
    y = layers.Bidirectional(layers.LSTM(2, return_sequences=True))(x)
    functional = lamina.Model(x, layers.Add()([y, y]))
    functional.summary()
    text = capsys.readouterr().out
    assert "InputLayer" in text and "(None, 6, 4)" in text and "Bidirectional" in text and "Add" in text
