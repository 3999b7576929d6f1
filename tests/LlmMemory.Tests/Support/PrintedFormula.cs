using System.Globalization;
using System.Text.RegularExpressions;

namespace LlmMemory.Tests.Support;

/// <summary>
/// Evaluates a formula as printed: its numbers (with B, KiB, MiB, GiB, TiB units) and the operators × · ÷ + − and
/// parentheses between them; words are labels. Commentary after a top-level "; " is not evaluated, nor a parenthesized
/// group without numbers ("(bf16)"). Each side of " = " is evaluated with the rounding of its printed numbers carried
/// along (a number printed with two decimals may be off by half a unit in the last place).
/// </summary>
internal static partial class PrintedFormula
{
    /// <summary>A value and how far the printed rounding lets it be from the exact one.</summary>
    public readonly record struct Interval(double Value, double Error)
    {
        public static Interval operator +(Interval a, Interval b) => new(a.Value + b.Value, a.Error + b.Error);

        public static Interval operator -(Interval a, Interval b) => new(a.Value - b.Value, a.Error + b.Error);

        public static Interval operator *(Interval a, Interval b) =>
            new(a.Value * b.Value, (Math.Abs(a.Value) * b.Error) + (Math.Abs(b.Value) * a.Error) + (a.Error * b.Error));

        public static Interval operator /(Interval a, Interval b)
        {
            double low = Math.Abs(b.Value) - b.Error;
            return new(a.Value / b.Value, low <= 0 ? double.PositiveInfinity : ((Math.Abs(a.Value) * b.Error) + (Math.Abs(b.Value) * a.Error)) / (Math.Abs(b.Value) * low));
        }

        public bool Contains(double x, double slack) => Math.Abs(x - Value) <= Error + slack;
    }

    /// <summary>The evaluated sides of the formula's expression (one per " = "); empty when it prints no number.</summary>
    public static IReadOnlyList<Interval> Sides(string formula)
    {
        string expression = Expression(formula);
        return [.. SplitTopLevel(expression, " = ").Select(Evaluate).OfType<Interval>()];
    }

    /// <summary>The part before the first "; " outside parentheses.</summary>
    public static string Expression(string formula)
    {
        int depth = 0;
        for (int i = 0; i < formula.Length; i++)
        {
            depth += formula[i] == '(' ? 1 : formula[i] == ')' ? -1 : 0;
            if (depth == 0 && formula[i] == ';' && i + 1 < formula.Length && formula[i + 1] == ' ')
            {
                return formula[..i];
            }
        }

        return formula;
    }

    private static IEnumerable<string> SplitTopLevel(string text, string separator)
    {
        int depth = 0, start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            depth += text[i] == '(' ? 1 : text[i] == ')' ? -1 : 0;
            if (depth == 0 && string.CompareOrdinal(text, i, separator, 0, separator.Length) == 0)
            {
                yield return text[start..i];
                start = i + separator.Length;
            }
        }

        yield return text[start..];
    }

    /// <summary>Tokens: numbers (with an optional byte unit), operators and parentheses; everything else is dropped.</summary>
    private static List<(char Kind, Interval Value)> Tokens(string text)
    {
        var tokens = new List<(char, Interval)>();
        foreach (Match m in Token().Matches(text))
        {
            if (m.Groups["number"].Success)
            {
                string digits = m.Groups["number"].Value.Replace(",", "", StringComparison.Ordinal);
                double value = double.Parse(digits, CultureInfo.InvariantCulture);
                int decimals = digits.Contains('.', StringComparison.Ordinal) ? digits.Length - digits.IndexOf('.', StringComparison.Ordinal) - 1 : 0;
                double scale = m.Groups["unit"].Value switch
                {
                    "KiB" => 1 << 10,
                    "MiB" => 1 << 20,
                    "GiB" => 1 << 30,
                    "TiB" => 1L << 40,
                    _ => 1,
                };
                // A size printed as "1.05 GiB" is rounded to its decimals; a plain count or a "2 B" is exact unless it has decimals.
                double error = decimals > 0 ? 0.5 * Math.Pow(10, -decimals) * scale : 0;
                tokens.Add(('n', new Interval(value * scale, error)));
            }
            else
            {
                tokens.Add((m.Value[0], default));
            }
        }

        return tokens;
    }

    /// <summary>Evaluates one side; null when it prints no number.</summary>
    private static Interval? Evaluate(string side)
    {
        List<(char Kind, Interval Value)> tokens = DropEmptyGroups(Tokens(side));
        if (!tokens.Any(t => t.Kind == 'n'))
        {
            return null;
        }

        int position = 0;
        Interval result = Sum(tokens, ref position);
        return position == tokens.Count ? result : throw new FormatException($"'{side}' has an operator or number out of place at token {position}");
    }

    /// <summary>Removes parenthesized groups without a number ("(bf16)", "(fp32 log-softmax + two fp32 gradients)"): remarks.</summary>
    private static List<(char Kind, Interval Value)> DropEmptyGroups(List<(char Kind, Interval Value)> tokens)
    {
        for (int close = 0; close < tokens.Count; close++)
        {
            if (tokens[close].Kind != ')')
            {
                continue;
            }

            int open = tokens.FindLastIndex(close, t => t.Kind == '(');
            if (open >= 0 && !tokens.Skip(open).Take(close - open).Any(t => t.Kind == 'n'))
            {
                tokens.RemoveRange(open, close - open + 1);
                close = -1;
            }
        }

        return tokens;
    }

    private static Interval Sum(List<(char Kind, Interval Value)> t, ref int i)
    {
        Interval value = Product(t, ref i);
        while (i < t.Count && t[i].Kind is '+' or '−')
        {
            char op = t[i++].Kind;
            Interval right = Product(t, ref i);
            value = op == '+' ? value + right : value - right;
        }

        return value;
    }

    private static Interval Product(List<(char Kind, Interval Value)> t, ref int i)
    {
        Interval value = Atom(t, ref i);
        while (i < t.Count && t[i].Kind is '×' or '·' or '÷')
        {
            char op = t[i++].Kind;
            Interval right = Atom(t, ref i);
            value = op == '÷' ? value / right : value * right;
        }

        return value;
    }

    private static Interval Atom(List<(char Kind, Interval Value)> t, ref int i)
    {
        if (i < t.Count && t[i].Kind == 'n')
        {
            return t[i++].Value;
        }

        if (i < t.Count && t[i].Kind == '(')
        {
            i++;
            Interval inner = Sum(t, ref i);
            if (i >= t.Count || t[i].Kind != ')')
            {
                throw new FormatException("unbalanced parenthesis");
            }

            i++;
            return inner;
        }

        throw new FormatException($"expected a number at token {i}");
    }

    // A number stands alone: not inside a word ("bf16", "q4_k_m"), a name ("Llama-3.1") or a path. Thousands separators
    // are commas before exactly three digits.
    [GeneratedRegex(@"(?<![\w.\-/])(?<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:\s?(?<unit>KiB|MiB|GiB|TiB|B)\b)?(?![\w.\-/])|[×·÷+−()]")]
    private static partial Regex Token();
}
