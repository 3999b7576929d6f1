namespace LlmMemory.Hub;

/// <summary>A read-only, seekable view of a remote file that fetches only the ranges read, one HTTP Range request per miss.</summary>
/// <remarks>
/// Misses fetch at least <see cref="FirstChunk"/> bytes, doubling on sequential reads up to <see cref="MaxChunk"/>: a
/// safetensors header usually arrives with the first request, a GGUF header (tokenizer arrays included) in a few. Bytes past
/// the header are fetched only as read-ahead of the last request.
/// </remarks>
internal sealed class HttpRangeStream : Stream
{
    /// <summary>First request: 64 KiB holds the whole safetensors header of most single-file checkpoints.</summary>
    public const int FirstChunk = 64 << 10;

    /// <summary>Largest read-ahead: 1 MiB keeps GGUF tokenizer arrays to a few requests.</summary>
    public const int MaxChunk = 1 << 20;

    private readonly HubClient _client;
    private readonly HubModelId _id;
    private readonly string _file;
    private byte[] _buffer = [];
    private long _bufferStart;
    private long _position;
    private int _chunk = FirstChunk;
    private long _length;

    private HttpRangeStream(HubClient client, HubModelId id, string file)
    {
        _client = client;
        _id = id;
        _file = file;
    }

    /// <summary>Opens the file with a first range request, which also tells its length.</summary>
    public static HttpRangeStream Open(HubClient client, HubModelId id, string file)
    {
        var stream = new HttpRangeStream(client, id, file);
        stream.Fetch(0, FirstChunk);
        return stream;
    }

    /// <summary>Bytes fetched so far over HTTP.</summary>
    public long Fetched { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _length;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (_position >= _length || destination.Length == 0)
        {
            return 0;
        }

        if (_position < _bufferStart || _position >= _bufferStart + _buffer.Length)
        {
            // Reading on, or skipping a little ahead (GGUF string arrays are skipped string by string), counts as sequential.
            long end = _bufferStart + _buffer.Length;
            bool sequential = _position >= end && _position - end < _chunk;
            _chunk = sequential ? Math.Min(_chunk * 2, MaxChunk) : FirstChunk;
            Fetch(_position, (int)Math.Min(Math.Max(_chunk, destination.Length), int.MaxValue / 2));
        }

        int available = (int)(_bufferStart + _buffer.Length - _position);
        int count = Math.Min(available, destination.Length);
        _buffer.AsSpan((int)(_position - _bufferStart), count).CopyTo(destination);
        _position += count;
        return count;
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => checked(_position + offset),
        _ => checked(_length + offset),
    };

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private void Fetch(long start, int count)
    {
        (byte[] bytes, long total) = _client.GetRange(_id, _file, start, count);
        _buffer = bytes;
        _bufferStart = start;
        _length = total;
        Fetched += bytes.Length;
    }
}
