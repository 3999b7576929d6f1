"""Minimal GGUF v3 writer (no deps) for synthetic, all-zero models of a given shape.
Used only to create test files for the local llama.cpp runs; memory depends on shapes/types, not values."""
import struct, sys, json, os

GGUF_TYPE = dict(U8=0,I8=1,U16=2,I16=3,U32=4,I32=5,F32=6,BOOL=7,STRING=8,ARRAY=9,U64=10,I64=11,F64=12)
# ggml type id, block size, type size
GGML = {
 'F32':(0,1,4),'F16':(1,1,2),'Q4_0':(2,32,18),'Q4_1':(3,32,20),'Q5_0':(6,32,22),'Q5_1':(7,32,24),
 'Q8_0':(8,32,34),'Q2_K':(10,256,84),'Q3_K':(11,256,110),'Q4_K':(12,256,144),'Q5_K':(13,256,176),
 'Q6_K':(14,256,210),'IQ4_NL':(20,32,18),'BF16':(30,1,2),
}

def _s(b, x):
    x = x.encode(); b += struct.pack('<Q', len(x)) + x

def _kv(b, key, typ, val):
    _s(b, key)
    if typ == 'ARRAY':
        et, vals = val
        b += struct.pack('<I', GGUF_TYPE['ARRAY']) + struct.pack('<I', GGUF_TYPE[et]) + struct.pack('<Q', len(vals))
        for v in vals: _val(b, et, v)
    else:
        b += struct.pack('<I', GGUF_TYPE[typ]); _val(b, typ, val)

def _val(b, typ, v):
    if typ == 'STRING': _s(b, v)
    else: b += struct.pack({'U8':'<B','I8':'<b','U16':'<H','I16':'<h','U32':'<I','I32':'<i','F32':'<f','BOOL':'<?','U64':'<Q','I64':'<q','F64':'<d'}[typ], v)

def nbytes(t, ne):
    _, bs, ts = GGML[t]
    assert ne[0] % bs == 0, (t, ne)
    n = ne[0] // bs * ts
    for x in ne[1:]: n *= x
    return n

def write(path, kvs, tensors, align=32):
    """kvs: list of (key, type, value); tensors: list of (name, type, ne list)"""
    b = bytearray(b'GGUF') + struct.pack('<I', 3) + struct.pack('<Q', len(tensors)) + struct.pack('<Q', len(kvs))
    for k, t, v in kvs: _kv(b, k, t, v)
    off = 0
    for name, t, ne in tensors:
        _s(b, name); b += struct.pack('<I', len(ne))
        for x in ne: b += struct.pack('<Q', x)
        b += struct.pack('<I', GGML[t][0]) + struct.pack('<Q', off)
        off += nbytes(t, ne); off = (off + align - 1) // align * align
    pad = (-len(b)) % align
    b += b'\0' * pad
    with open(path, 'wb') as f:
        f.write(b); f.truncate(len(b) + off)

def spm_vocab(n_vocab):
    toks = ['<unk>', '<s>', '</s>'] + ['<0x%02X>' % i for i in range(256)]
    toks += ['\u2581t%d' % i for i in range(n_vocab - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259)
    return [('tokenizer.ggml.model', 'STRING', 'llama'), ('tokenizer.ggml.tokens', 'ARRAY', ('STRING', toks)),
            ('tokenizer.ggml.scores', 'ARRAY', ('F32', [0.0] * n_vocab)), ('tokenizer.ggml.token_type', 'ARRAY', ('I32', types)),
            ('tokenizer.ggml.bos_token_id', 'U32', 1), ('tokenizer.ggml.eos_token_id', 'U32', 2), ('tokenizer.ggml.unknown_token_id', 'U32', 0)]

if __name__ == '__main__':
    # usage: gguf_writer.py spec.json out.gguf   (spec from model.gguf_spec)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import model as M
    spec = json.load(open(sys.argv[1]))
    kvs, tensors = M.gguf_layout(spec)
    write(sys.argv[2], kvs + spm_vocab(spec['vocab_size']), tensors)
