using System.Buffers.Binary;
using System.Text;

namespace LlmMemory.Formats;

/// <summary>Little-endian reads from the head of a weights file, each bounded by the bytes that remain.</summary>
/// <remarks>
/// Every failure is a <see cref="ModelFormatException"/> naming the file, the field and the offset: a hostile length can
/// neither allocate more than the file holds nor make the reader run past its end.
/// </remarks>
internal sealed class HeaderReader
{
    private readonly Stream _stream;
    private readonly long _start;
    private readonly byte[] _scratch = new byte[8];

    /// <param name="stream">The file, positioned at its start.</param>
    /// <param name="source">File name used in messages.</param>
    /// <param name="length">Bytes the file holds from the current position; null when unknown (then only reads are bounded).</param>
    public HeaderReader(Stream stream, string source, long? length)
    {
        _stream = stream;
        Source = source;
        _start = stream.CanSeek ? stream.Position : 0;
        Length = length ?? (stream.CanSeek ? stream.Length - _start : null);
    }

    public string Source { get; }

    /// <summary>Bytes in the file, when known.</summary>
    public long? Length { get; }

    /// <summary>Bytes read (or skipped) so far.</summary>
    public long Position { get; private set; }

    /// <summary>Bytes left after <see cref="Position"/>, when the length is known.</summary>
    public long? Remaining => Length - Position;

    public ModelFormatException Error(string problem) => new(Source, null, problem);

    /// <summary>Fails unless <paramref name="count"/> bytes remain for <paramref name="what"/>.</summary>
    public void Require(long count, string what)
    {
        if (count < 0 || (Remaining is long left && count > left))
        {
            throw Error($"is truncated: {what} needs {count:N0} bytes at offset {Position:N0}, but the file ends at {Length:N0}.");
        }
    }

    public void ReadExactly(Span<byte> buffer, string what)
    {
        Require(buffer.Length, what);
        int done = 0;
        while (done < buffer.Length)
        {
            int read = _stream.Read(buffer[done..]);
            if (read == 0)
            {
                throw Error($"is truncated: {what} needs {buffer.Length:N0} bytes at offset {Position:N0}, but the data ends after {Position + done:N0}.");
            }

            done += read;
        }

        Position += buffer.Length;
    }

    public byte[] ReadBytes(long count, long limit, string what)
    {
        if (count > limit)
        {
            throw Error($"{what} is {count:N0} bytes, above the limit of {limit:N0}.");
        }

        Require(count, what);
        byte[] bytes = new byte[count];
        ReadExactly(bytes, what);
        return bytes;
    }

    public byte ReadByte(string what)
    {
        ReadExactly(_scratch.AsSpan(0, 1), what);
        return _scratch[0];
    }

    public ushort ReadUInt16(string what)
    {
        ReadExactly(_scratch.AsSpan(0, 2), what);
        return BinaryPrimitives.ReadUInt16LittleEndian(_scratch);
    }

    public uint ReadUInt32(string what)
    {
        ReadExactly(_scratch.AsSpan(0, 4), what);
        return BinaryPrimitives.ReadUInt32LittleEndian(_scratch);
    }

    public ulong ReadUInt64(string what)
    {
        ReadExactly(_scratch.AsSpan(0, 8), what);
        return BinaryPrimitives.ReadUInt64LittleEndian(_scratch);
    }

    /// <summary>A UTF-8 string of <paramref name="byteCount"/> bytes, at most <paramref name="limit"/>.</summary>
    public string ReadUtf8(ulong byteCount, long limit, string what)
    {
        if (byteCount > (ulong)limit)
        {
            throw Error($"{what} is {byteCount:N0} bytes long, above the limit of {limit:N0}.");
        }

        byte[] bytes = ReadBytes((long)byteCount, limit, what);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error($"{what} at offset {Position - bytes.Length:N0} is not valid UTF-8.");
        }
    }

    /// <summary>Moves past <paramref name="count"/> bytes without keeping them (seeks when it can).</summary>
    public void Skip(long count, string what)
    {
        Require(count, what);
        if (_stream.CanSeek)
        {
            long target = _start + Position + count;
            if (Length is null && target > _stream.Length)
            {
                throw Error($"is truncated: {what} needs {count:N0} bytes at offset {Position:N0}.");
            }

            _stream.Seek(target, SeekOrigin.Begin);
            Position += count;
            return;
        }

        byte[] buffer = new byte[(int)Math.Min(count, 81920)];
        long left = count;
        while (left > 0)
        {
            int chunk = (int)Math.Min(left, buffer.Length);
            ReadExactly(buffer.AsSpan(0, chunk), what);
            left -= chunk;
        }
    }
}
