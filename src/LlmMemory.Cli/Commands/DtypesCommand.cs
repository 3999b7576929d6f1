using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LlmMemory.Cli.Rendering;
using LlmMemory.Numerics;
using LlmMemory.Reporting;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory dtypes [--value X]</c>: the numeric formats, and how one number is stored in each float format.</summary>
internal static class DtypesCommand
{
    public static Command Create(CliOutput io)
    {
        var value = new Option<string?>("--value") { Description = "Show how this number is stored in each floating-point format, e.g. 3.14159." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var command = new Command("dtypes", "Numeric formats: bytes per block, bits per element, float layouts and ranges.") { value, json };
        command.SetAction(parse =>
        {
            string? text = parse.GetValue(value);
            if (text is null)
            {
                Formats(io, parse.GetValue(json));
                return 0;
            }

            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double number))
            {
                throw new FormatException($"--value '{text}' is not a number.");
            }

            Encodings(io, number, parse.GetValue(json));
            return 0;
        });
        return command;
    }

    private static void Formats(CliOutput io, bool json)
    {
        if (json)
        {
            Output.Json(io, CatalogJson.Dtypes());
            return;
        }

        Output.Table(io, ["Type", "Block", "Bytes/block", "Bits/elem", "S/E/M", "Max finite", "Smallest normal", "Epsilon", "What"],
            DataTypes.All.Select(t => new[]
            {
                t.Name.ToLowerInvariant(), t.BlockSize.ToString(CultureInfo.InvariantCulture), t.BlockBytes.ToString(CultureInfo.InvariantCulture),
                t.BitsPerElement.ToString("0.####", CultureInfo.InvariantCulture),
                t.Float is FloatLayout f ? $"1/{f.ExponentBits}/{f.MantissaBits}" : "-",
                t.Float is FloatLayout g ? g.MaxFinite.ToString("G6", CultureInfo.InvariantCulture) : "-",
                t.Float is FloatLayout h ? h.SmallestNormal.ToString("G6", CultureInfo.InvariantCulture) : "-",
                t.Float is FloatLayout e ? e.Epsilon.ToString("G6", CultureInfo.InvariantCulture) : "-",
                t.Description,
            }),
            rightAligned: [1, 2, 3]);
        io.WriteWrapped("Weight formats (--weights): " + string.Join(", ", WeightFormats.All.Select(f => f.Name)));
    }

    private static void Encodings(CliOutput io, double number, bool json)
    {
        var rows = DataTypes.All.Where(t => t.Float is not null)
            .Select(t => (Type: t, Encoding: FloatEncoding.Encode(number, t.Float!)))
            .ToArray();
        if (json)
        {
            var array = new JsonArray();
            foreach ((DataType type, FloatEncoding e) in rows)
            {
                array.Add((JsonNode)new JsonObject
                {
                    ["type"] = type.Name.ToLowerInvariant(),
                    ["bits"] = e.Bits,
                    ["sign"] = e.Sign,
                    ["exponent"] = e.ExponentField,
                    ["mantissa"] = e.MantissaField,
                    ["stored"] = double.IsFinite(e.Stored) ? e.Stored : null,
                    ["stored_text"] = Stored(e.Stored),
                    ["error"] = double.IsFinite(e.Stored) ? e.ErrorFrom(number) : null,
                });
            }

            Output.Json(io, new JsonObject { ["value"] = number, ["encodings"] = array });
            return;
        }

        Output.Table(io, ["Type", "Sign Exponent Mantissa", "Stored value", "Rounding error"],
            rows.Select(r => new[]
            {
                r.Type.Name.ToLowerInvariant(), r.Encoding.Bits, Stored(r.Encoding.Stored),
                double.IsFinite(r.Encoding.Stored) ? r.Encoding.ErrorFrom(number).ToString("G3", CultureInfo.InvariantCulture) : "overflow",
            }),
            caption: $"{number.ToString("R", CultureInfo.InvariantCulture)}: value = (-1)^sign × 2^(exponent − bias) × 1.mantissa");
    }

    private static string Stored(double value) => value.ToString("G18", CultureInfo.InvariantCulture);
}
