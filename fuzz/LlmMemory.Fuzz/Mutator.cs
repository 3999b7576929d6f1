using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using CsCheck;

namespace LlmMemory.Fuzz;

/// <summary>
/// Generates hostile inputs from valid seeds: up to eight edits, each either token-aware (a JSON value or key replaced by an
/// awkward one: huge, negative, fractional, wrong type, deeply nested, duplicated key) or byte-level (bit flips, interesting
/// 8/32/64-bit values written over lengths, counts and offsets, insertions, deletions, duplicated runs, truncation, splices
/// from another seed). Edits are data (<see cref="Edit"/>), so CsCheck shrinks a failure to the fewest, smallest edits.
/// </summary>
public static class Mutator
{
    /// <summary>One edit: its kind and three numbers that pick where and what (reduced modulo what fits).</summary>
    public readonly record struct Edit(int Kind, int Where, int What, ulong Value);

    private const int JsonKinds = 3;

    private const int ByteKinds = 9;

    /// <summary>Replacements for a JSON value: boundaries of int32/int64/double, wrong types, nesting past any sane depth.</summary>
    private static readonly string[] JsonValues =
    [
        "0", "-1", "1", "2", "3", "7", "8", "63", "64", "255", "256", "1023", "4097", "65536", "1000000", "2147483647", "2147483648",
        "-2147483648", "4294967296", "9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "18446744073709551615", "1e18", "1e308", "1e309", "-1e309", "1.5", "0.5", "-0.0", "1e-320", "0.1", "null", "true", "false",
        "\"\"", "\"x\"", "\"llama\"", "\"mixtral\"", "\"deepseek_v3\"", "\"gpt_oss\"", "\"t5\"", "\"BF16\"", "\"F8_E4M3\"", "\"I4\"", "\"\\ud800\"",
        "\"\\u0000\"", "[]", "{}", "[1,2]", "[0,18446744073709551615]", "[-1,1]", "{\"a\":1}", "[[[[[[[[[[1]]]]]]]]]]",
        new string('[', 70) + new string(']', 70), "\"" + new string('x', 70_000) + "\"", "[" + string.Join(",", Enumerable.Repeat("4096", 300)) + "]",
    ];

    /// <summary>Values that hit boundaries when written over a length, count, offset or type field.</summary>
    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 3, 4, 7, 8, 12, 13, 14, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096, 65535, 65536,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue,
        ulong.MaxValue - 7, 100_000_000, 1UL << 40, 1UL << 53,
    ];

    /// <summary>Mutated inputs of <paramref name="target"/>.</summary>
    public static Gen<byte[]> Inputs(FuzzTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        Gen<Edit> edit = Gen.Select(Gen.Int[0, JsonKinds + ByteKinds - 1], Gen.Int[0, int.MaxValue], Gen.Int[0, int.MaxValue], Gen.ULong,
            (kind, where, what, value) => new Edit(kind, where, what, value));
        return Gen.Select(Gen.Int[0, target.Seeds.Count - 1], edit.Array[1, 8], (seed, edits) => Apply(target, seed, edits));
    }

    /// <summary>Applies edits to a copy of seed <paramref name="seed"/>: token-aware ones first, while the JSON is still whole.</summary>
    public static byte[] Apply(FuzzTarget target, int seed, Edit[] edits)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(edits);
        byte[] input = target.Seeds[seed];
        if (target.JsonRange is not null)
        {
            // JSON formats: three in four byte-level edits become token edits, or most inputs would stop at the UTF-8 or JSON check.
            edits = edits.Select(e => e.Kind >= JsonKinds && e.Value % 4 != 0 ? e with { Kind = e.Kind % JsonKinds } : e).ToArray();
        }

        foreach (Edit e in edits.Where(e => e.Kind < JsonKinds))
        {
            if (target.JsonRange?.Invoke(input) is Range range)
            {
                input = EditJson(input, range, e);
            }
        }

        foreach (Edit e in edits.Where(e => e.Kind >= JsonKinds))
        {
            input = EditBytes(input, e, target.Seeds[(int)(e.Value % (ulong)target.Seeds.Count)]);
        }

        return input;
    }

    private static byte[] EditJson(byte[] input, Range range, Edit e)
    {
        (int offset, int length) = range.GetOffsetAndLength(input.Length);
        List<(int Start, int Length, bool IsName)> tokens = Tokens(input.AsSpan(offset, length));
        if (tokens.Count == 0)
        {
            return input;
        }

        (int start, int tokenLength, bool isName) = tokens[e.Where % tokens.Count];
        string replacement;
        switch (e.Kind)
        {
            case 0: // a value (or a key's name) replaced by an awkward one
                replacement = isName ? $"\"{JsonValues[e.What % JsonValues.Length].Trim('"')}\"" : JsonValues[e.What % JsonValues.Length];
                break;
            case 1: // a key renamed to another key of the same document: duplicates, and known keys where they do not belong
                var names = tokens.Where(t => t.IsName).ToList();
                if (names.Count == 0)
                {
                    return input;
                }

                (int s, int l, _) = names[e.What % names.Count];
                replacement = Encoding.UTF8.GetString(input, offset + s, l);
                break;
            default: // a value replaced by a value from elsewhere in the document
                var values = tokens.Where(t => !t.IsName).ToList();
                if (values.Count == 0)
                {
                    return input;
                }

                (int vs, int vl, _) = values[e.What % values.Count];
                replacement = Encoding.UTF8.GetString(input, offset + vs, vl);
                if (isName)
                {
                    return input;
                }

                break;
        }

        byte[] bytes = Encoding.UTF8.GetBytes(replacement);
        byte[] edited = [.. input.AsSpan(0, offset + start), .. bytes, .. input.AsSpan(offset + start + tokenLength)];
        if (offset == 8 && BinaryPrimitives.ReadUInt64LittleEndian(input) == (ulong)length)
        {
            // A safetensors header: its length prefix follows the edit, so the edit reaches the JSON reader.
            BinaryPrimitives.WriteUInt64LittleEndian(edited, (ulong)(length + bytes.Length - tokenLength));
        }

        return edited;
    }

    /// <summary>Spans of scalar values and property names (strings with their quotes) in a JSON text.</summary>
    private static List<(int Start, int Length, bool IsName)> Tokens(ReadOnlySpan<byte> json)
    {
        var tokens = new List<(int, int, bool)>();
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256, AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        try
        {
            while (reader.Read())
            {
                int start = (int)reader.TokenStartIndex;
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                    case JsonTokenType.String:
                        // ValueSpan is the raw text between the quotes (escapes kept), so the token is two bytes longer.
                        tokens.Add((start, reader.ValueSpan.Length + 2, reader.TokenType == JsonTokenType.PropertyName));
                        break;
                    case JsonTokenType.Number:
                    case JsonTokenType.True:
                    case JsonTokenType.False:
                    case JsonTokenType.Null:
                        tokens.Add((start, reader.ValueSpan.Length, false));
                        break;
                    default:
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // A seed already edited into invalid JSON: keep the tokens found before the damage.
        }

        return tokens;
    }

    private static byte[] EditBytes(byte[] input, Edit e, byte[] donor)
    {
        int length = input.Length;
        int at = length == 0 ? 0 : e.Where % length;
        int run = 1 + (e.What % 64);
        byte[] copy = (byte[])input.Clone();
        switch (e.Kind - JsonKinds)
        {
            case 0 when length > 0: // flip one bit
                copy[at] ^= (byte)(1 << (e.What % 8));
                return copy;
            case 1 when length > 0: // an interesting byte
                copy[at] = unchecked((byte)Interesting[e.What % Interesting.Length]);
                return copy;
            case 2 when length >= 4: // an interesting little-endian uint32 (GGUF types, dimension counts, versions)
                BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(Math.Min(at, length - 4)), unchecked((uint)Interesting[e.What % Interesting.Length]));
                return copy;
            case 3 when length >= 8: // an interesting little-endian uint64 (lengths, counts, offsets), or the seed's value nudged
                ulong value = e.Value % 3 == 0
                    ? unchecked(BinaryPrimitives.ReadUInt64LittleEndian(copy.AsSpan(Math.Min(at, length - 8))) + (ulong)(e.What % 33) - 16)
                    : Interesting[e.What % Interesting.Length];
                BinaryPrimitives.WriteUInt64LittleEndian(copy.AsSpan(Math.Min(at, length - 8)), value);
                return copy;
            case 4 when length > 0: // delete a run
                return [.. input.AsSpan(0, at), .. input.AsSpan(Math.Min(length, at + run))];
            case 5: // insert random bytes
                byte[] noise = new byte[run];
                new Random(unchecked((int)e.Value)).NextBytes(noise);
                return [.. input.AsSpan(0, at), .. noise, .. input.AsSpan(at)];
            case 6 when length > 0: // duplicate a run in place
                int end = Math.Min(length, at + run);
                return [.. input.AsSpan(0, end), .. input.AsSpan(at, end - at), .. input.AsSpan(end)];
            case 7: // truncate
                return input[..at];
            case 8 when donor.Length > 0: // splice a run from another seed over this one
                int from = (int)(e.Value % (ulong)donor.Length);
                int n = Math.Min(run, Math.Min(donor.Length - from, length - at));
                donor.AsSpan(from, Math.Max(0, n)).CopyTo(copy.AsSpan(at));
                return copy;
            default:
                return copy;
        }
    }
}
