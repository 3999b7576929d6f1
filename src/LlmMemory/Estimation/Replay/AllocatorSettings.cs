using System.Globalization;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The caching allocator's settings as <c>PYTORCH_CUDA_ALLOC_CONF</c> (or <c>PYTORCH_ALLOC_CONF</c>) gives them, read as
/// PyTorch reads them: <c>ConfigTokenizer</c> and <c>AcceleratorAllocatorConfig::parseArgs</c> (c10/core/AllocatorConfig.h
/// and .cpp), <c>CUDAAllocatorConfig::parseArgs</c> (c10/cuda/CUDAAllocatorConfig.cpp).
/// </summary>
/// <param name="ExpandableSegments"><c>expandable_segments</c>: one segment per pool that maps pages as it grows.</param>
/// <param name="MaxSplitSize"><c>max_split_size_mb</c> in bytes: cached blocks this large are never split; unlimited by default.</param>
/// <param name="MaxNonSplitRounding"><c>max_non_split_rounding_mb</c> in bytes: how much larger than a request (of at least
/// <see cref="MaxSplitSize"/>) an unsplittable cached block may be and still serve it; 20 MiB by default.</param>
/// <param name="RoundupDivisions"><c>roundup_power2_divisions</c>: per power-of-two interval of request sizes (1 MiB, 2 MiB, …,
/// 32 GiB and above), how many equal steps the interval is cut into; 0 or 1 rounds to 512 B only.</param>
/// <param name="GarbageCollectionThreshold"><c>garbage_collection_threshold</c>; 0 for none.</param>
internal sealed record AllocatorSettings(bool ExpandableSegments, long MaxSplitSize, long MaxNonSplitRounding,
    IReadOnlyList<int> RoundupDivisions, double GarbageCollectionThreshold)
{
    private const long MiB = 1L << 20;

    /// <summary><c>kRoundUpPowerOfTwoIntervals</c>: the intervals start at 1 MiB and end at 64 GiB.</summary>
    private const int Intervals = 16;

    /// <summary>PyTorch's defaults.</summary>
    public static readonly AllocatorSettings Default = new(false, long.MaxValue, CachingAllocator.LargeBuffer, new int[Intervals], 0);

    /// <summary>Keys of CUDAAllocatorConfig that change no device memory of a run without CUDA graphs and pinned host tensors.</summary>
    private static readonly string[] HostOrLockKeys =
        ["release_lock_on_cudamalloc", "pinned_use_cuda_host_register", "pinned_num_register_threads", "pinned_use_background_threads",
            "pinned_reserve_segment_size_mb", "graph_capture_record_stream_reuse"];

    /// <summary>The divisions for a request of <paramref name="size"/> bytes (<c>AcceleratorAllocatorConfig::roundup_power2_divisions</c>).</summary>
    public int DivisionsFor(long size)
    {
        int log = 63 - (int)ulong.LeadingZeroCount((ulong)size);
        return RoundupDivisions[Math.Min(Math.Max(log - 20, 0), Intervals - 1)];
    }

    /// <exception cref="ModelFormatException">A malformed string, a bad value, an unknown key or a setting the replay does not model.</exception>
    public static AllocatorSettings Parse(string text, string origin)
    {
        ArgumentNullException.ThrowIfNull(text);
        List<string> tokens = Tokenize(text);
        var settings = Default;
        int i = 0;
        while (i < tokens.Count)
        {
            string key = tokens[i];
            Expect(tokens, i + 1, ":", key, origin);
            i += 2;
            string value = Token(tokens, i, key, origin);
            settings = key switch
            {
                "expandable_segments" => settings with { ExpandableSegments = Bool(value, key, origin) },
                "max_split_size_mb" => settings with { MaxSplitSize = Megabytes(value, key, origin) },
                "max_non_split_rounding_mb" => settings with { MaxNonSplitRounding = Megabytes(value, key, origin) },
                "garbage_collection_threshold" => settings with { GarbageCollectionThreshold = Threshold(value, key, origin) },
                "roundup_power2_divisions" => settings with { RoundupDivisions = Divisions(tokens, ref i, origin) },
                "backend" when value == "native" => settings,
                "backend" => throw Error(origin, value == "cudaMallocAsync"
                    ? "has backend:cudaMallocAsync, CUDA's stream-ordered allocator, which the replay does not model (it replays PyTorch's native caching allocator)"
                    : $"has backend:{value}; PyTorch knows native and cudaMallocAsync"),
                _ when HostOrLockKeys.Contains(key) => throw Error(origin,
                    $"has {key}, a PyTorch setting of pinned host memory, CUDA graphs or locking that changes no device memory here; remove it"),
                _ => throw Error(origin, $"has '{key}', which is not a key of PyTorch's CUDA allocator config (expandable_segments, max_split_size_mb, max_non_split_rounding_mb, roundup_power2_divisions, garbage_collection_threshold, backend)"),
            };
            i++;
            if (i < tokens.Count)
            {
                Expect(tokens, i, ",", key, origin);
                i++;
            }
        }

        return settings;
    }

    /// <summary><c>ConfigTokenizer</c>: ',', ':', '[' and ']' are tokens of their own, whitespace is dropped, the rest are words.</summary>
    private static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        var word = new System.Text.StringBuilder();
        foreach (char c in text)
        {
            if (c is ',' or ':' or '[' or ']')
            {
                if (word.Length > 0)
                {
                    tokens.Add(word.ToString());
                    word.Clear();
                }

                tokens.Add(c.ToString());
            }
            else if (!char.IsWhiteSpace(c))
            {
                word.Append(c);
            }
        }

        if (word.Length > 0)
        {
            tokens.Add(word.ToString());
        }

        return tokens;
    }

    /// <summary>
    /// <c>parseRoundUpPower2Divisions</c>: one power of two for every interval, or a list <c>[64:8,256:4,&gt;:1]</c> of
    /// interval boundaries in MiB (powers of two; the first also fills the intervals below it; <c>&gt;</c> fills those after
    /// the last) with their divisions (powers of two, or 0). <paramref name="i"/> starts at the value and ends at its last token.
    /// </summary>
    private static int[] Divisions(List<string> tokens, ref int i, string origin)
    {
        const string key = "roundup_power2_divisions";
        var divisions = new int[Intervals];
        if (tokens[i] != "[")
        {
            long value = Integer(tokens[i], key, origin);
            if (!long.IsPow2(value))
            {
                throw Error(origin, $"has {key}:{tokens[i]}; the divisions must be a power of two");
            }

            Array.Fill(divisions, (int)Math.Min(value, int.MaxValue));
            return divisions;
        }

        bool first = true;
        int last = 0;
        i++;
        while (Token(tokens, i, key, origin) != "]")
        {
            string boundary = tokens[i];
            Expect(tokens, i + 1, ":", key, origin);
            i += 2;
            long value = Integer(Token(tokens, i, key, origin), key, origin);
            if (value != 0 && !long.IsPow2(value))
            {
                throw Error(origin, $"has {key} {boundary}:{tokens[i]}; the divisions must be a power of two, or 0 for none");
            }

            int v = (int)Math.Min(value, int.MaxValue);
            if (boundary == ">")
            {
                Array.Fill(divisions, v, last + 1, Math.Max(Intervals - last - 1, 0));
            }
            else
            {
                long mb = Integer(boundary, key, origin);
                if (!long.IsPow2(mb))
                {
                    throw Error(origin, $"has {key} boundary {boundary}; the interval boundaries (MiB) must be powers of two");
                }

                int index = Math.Min(63 - (int)ulong.LeadingZeroCount((ulong)mb), Intervals - 1);
                if (first)
                {
                    Array.Fill(divisions, v, 0, index);
                    first = false;
                }

                divisions[index] = v;
                last = index;
            }

            i++;
            if (Token(tokens, i, key, origin) != "]")
            {
                Expect(tokens, i, ",", key, origin);
                i++;
            }
        }

        return divisions;
    }

    private static bool Bool(string value, string key, string origin) => value switch
    {
        "True" => true,
        "False" => false,
        _ => throw Error(origin, $"has {key}:{value}; PyTorch takes True or False"),
    };

    /// <summary>A size in MiB of at least <c>kLargeBuffer</c> (20 MiB), as <c>parseMaxSplitSize</c> requires.</summary>
    private static long Megabytes(string value, string key, string origin)
    {
        long mb = Integer(value, key, origin);
        return mb >= CachingAllocator.LargeBuffer / MiB ? mb >= long.MaxValue / MiB ? long.MaxValue : mb * MiB
            : throw Error(origin, $"has {key}:{value}; PyTorch requires at least {CachingAllocator.LargeBuffer / MiB}");
    }

    private static double Threshold(string value, string key, string origin) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t > 0 && t < 1 ? t
            : throw Error(origin, $"has {key}:{value}; PyTorch takes a number in (0.0, 1.0)");

    private static long Integer(string value, string key, string origin) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n
            : throw Error(origin, $"has {key} value '{value}', which is not a whole number");

    private static string Token(List<string> tokens, int i, string key, string origin) =>
        i < tokens.Count ? tokens[i] : throw Error(origin, $"ends inside {key}; PyTorch reads key:value pairs separated by commas");

    private static void Expect(List<string> tokens, int i, string token, string key, string origin)
    {
        if (Token(tokens, i, key, origin) != token)
        {
            throw Error(origin, $"has '{tokens[i]}' after {key} where PyTorch expects '{token}' (key:value pairs separated by commas)");
        }
    }

    private static ModelFormatException Error(string origin, string message) => new(origin, "alloc_conf", message + ".");
}
