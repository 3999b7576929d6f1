using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// A YAML config file as the JSON tree it means, read event by event (YamlDotNet's parser, no object mapping). Hostile
/// input is refused before it costs anything: aliases (the "billion laughs" bomb) and tags are errors, nesting stops at
/// <see cref="MaxDepth"/> levels and the tree at <see cref="MaxNodes"/> nodes; a repeated key is an error rather than a
/// silent last-one-wins.
/// </summary>
/// <remarks>
/// Plain scalars are typed as PyYAML's YAML 1.1 resolver types them (Axolotl, accelerate and torchtune read their files
/// with PyYAML): <c>true/yes/on</c> and <c>false/no/off</c> in any of their three casings are booleans, <c>~</c>,
/// <c>null</c> and an empty value are null, and numbers are numbers (also <c>3e-4</c>, which OmegaConf reads as a float);
/// quoted scalars are always strings.
/// </remarks>
internal static class YamlTree
{
    /// <summary>Nesting levels allowed: real configs use three or four.</summary>
    public const int MaxDepth = 64;

    /// <summary>Nodes allowed in one file: a long torchtune recipe has a few hundred.</summary>
    public const int MaxNodes = 100_000;

    private static readonly HashSet<string> True = ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"];
    private static readonly HashSet<string> False = ["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"];
    private static readonly HashSet<string> Null = ["", "~", "null", "Null", "NULL"];

    /// <summary>The one document of <paramref name="text"/> as JSON; <paramref name="file"/> names it in errors.</summary>
    /// <exception cref="ModelFormatException">The YAML is malformed or hostile; the message names the file and the line.</exception>
    public static JsonNode? Parse(string text, string file)
    {
        var parser = new Parser(new StringReader(text));
        var reader = new Reader(parser, file);
        try
        {
            reader.Expect<StreamStart>();
            if (parser.Accept<StreamEnd>(out _))
            {
                return null;
            }

            reader.Expect<DocumentStart>();
            JsonNode? root = reader.Node(1);
            reader.Expect<DocumentEnd>();
            return parser.Accept<StreamEnd>(out _)
                ? root
                : throw reader.Error(parser.Current, "holds several YAML documents; a config is one");
        }
        catch (YamlException error)
        {
            throw new ModelFormatException(file, null, $"is not valid YAML (line {error.Start.Line}: {error.Message.Split(Environment.NewLine)[0].TrimEnd('.')}).");
        }
    }

    private sealed class Reader(IParser parser, string file)
    {
        private int _nodes;

        public void Expect<T>()
            where T : ParsingEvent
        {
            if (!parser.TryConsume<T>(out _))
            {
                throw Error(parser.Current, $"is not a YAML document (expected {typeof(T).Name})");
            }
        }

        public JsonNode? Node(int depth)
        {
            ParsingEvent? current = parser.Current;
            if (depth > MaxDepth)
            {
                throw Error(current, $"nests deeper than {MaxDepth} levels");
            }

            if (++_nodes > MaxNodes)
            {
                throw Error(current, $"has more than {MaxNodes:N0} values");
            }

            switch (current)
            {
                case AnchorAlias alias:
                    throw Error(alias, $"uses a YAML alias (*{alias.Value}); write the value out (aliases are refused: they can multiply a small file into a huge tree)");
                case NodeEvent { Tag.IsEmpty: false } tagged:
                    throw Error(tagged, $"uses a YAML tag ({tagged.Tag}); a config is plain YAML");
                case Scalar scalar:
                    parser.MoveNext();
                    return Value(scalar);
                case SequenceStart:
                    parser.MoveNext();
                    var list = new JsonArray();
                    while (!parser.TryConsume<SequenceEnd>(out _))
                    {
                        list.Add(Node(depth + 1));
                    }

                    return list;
                case MappingStart:
                    parser.MoveNext();
                    return Mapping(depth);
                default:
                    throw Error(current, "is not a YAML document");
            }
        }

        public ModelFormatException Error(ParsingEvent? at, string problem) =>
            new(file, null, at is null ? problem + "." : $"{problem} (line {at.Start.Line}).");

        private JsonObject Mapping(int depth)
        {
            var map = new JsonObject();
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                if (parser.Current is not Scalar { Tag.IsEmpty: true } key)
                {
                    throw Error(parser.Current, parser.Current is AnchorAlias alias
                        ? $"uses a YAML alias (*{alias.Value}) as a key; write the key out"
                        : "has a key that is not a plain name");
                }

                parser.MoveNext();
                if (key.Value == "<<")
                {
                    throw Error(key, "uses a YAML merge key (<<); write the values out");
                }

                if (map.ContainsKey(key.Value))
                {
                    throw Error(key, $"repeats the key '{key.Value}'");
                }

                map[key.Value] = Node(depth + 1);
            }

            return map;
        }

        private static JsonValue? Value(Scalar scalar)
        {
            string text = scalar.Value;
            if (scalar.Style is not ScalarStyle.Plain)
            {
                return JsonValue.Create(text);
            }

            return Null.Contains(text) ? null
                : True.Contains(text) ? JsonValue.Create(true)
                : False.Contains(text) ? JsonValue.Create(false)
                : long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n)
                    ? JsonValue.Create(n)
                : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) && !text.Contains(',', StringComparison.Ordinal)
                    ? JsonValue.Create(d)
                : JsonValue.Create(text);
        }
    }
}
