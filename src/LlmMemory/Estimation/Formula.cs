using System.Globalization;

namespace LlmMemory.Estimation;

/// <summary>
/// A formula made of the numbers that compute a component's bytes: its text and its value come from the same terms, so they
/// cannot drift. Terms are quantities with a label ("8,192 tokens", "2 B", "14.96 GiB") joined by × · ÷ + −; words are
/// labels, never numbers. <see cref="MemoryComponent.Of"/> takes the bytes from <see cref="Value"/>.
/// </summary>
public abstract record Formula
{
    /// <summary>What the terms compute (bytes, for a component's formula).</summary>
    public abstract double Value { get; }

    /// <summary>Binding strength: 3 a quantity, 2 a product or quotient, 1 a sum or difference (weaker terms are parenthesized).</summary>
    private protected abstract int Precedence { get; }

    /// <summary>A count: "8,192 tokens", "32 layers", "2".</summary>
    public static Formula Count(double value, string? label = null) => new Quantity(value, label, Compact: false);

    /// <summary>Bytes per element: "2 B", "0.5625 B"; the label says of what ("bf16").</summary>
    public static Formula Bytes(double bytes, string? label = null) => new Quantity(bytes, label is null ? "B" : $"B ({label})", Compact: false);

    /// <summary>A size in binary units ("14.96 GiB"); its value is the exact bytes, its text rounded as sizes are.</summary>
    public static Formula Size(ByteSize size, string? label = null) => new SizeTerm(size, label);

    /// <summary>A product written tight, "16·2048" or "5·32·4096", for the terms inside a per-token sum.</summary>
    public static Formula Dot(params double[] factors)
    {
        ArgumentNullException.ThrowIfNull(factors);
        Formula product = new Quantity(factors[0], null, Compact: true);
        foreach (double factor in factors.Skip(1))
        {
            product = new Product(product, new Quantity(factor, null, Compact: true), Tight: true);
        }

        return product;
    }

    public static Formula operator *(Formula a, Formula b) => new Product(a, b, Tight: false);

    public static Formula operator /(Formula a, Formula b) => new Quotient(a, b);

    public static Formula operator +(Formula a, Formula b) => new Sum(a, b, Minus: false);

    public static Formula operator -(Formula a, Formula b) => new Sum(a, b, Minus: true);

    /// <summary>The sum of <paramref name="terms"/>; zero terms are not written.</summary>
    public static Formula SumOf(IEnumerable<Formula> terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        Formula? sum = null;
        foreach (Formula term in terms)
        {
            sum = sum is null ? term : sum + term;
        }

        return sum ?? Count(0);
    }

    /// <summary>"prefix terms": a word before the terms ("head 4,096 × 2·4096 B").</summary>
    public Formula After(string prefix) => new Labeled(this, prefix, null);

    /// <summary>"terms (why)": a number-free remark after the terms.</summary>
    public Formula Because(string remark) => new Labeled(this, null, remark);

    /// <summary>
    /// These terms, and what the exact count adds to them or takes away (rounding up per tensor, what a replay held beyond
    /// the closed form), so the formula's value is <paramref name="exact"/>.
    /// </summary>
    public Formula Adjusted(long exact, string why) => Adjusted(exact, why, why);

    /// <summary>As <see cref="Adjusted(long, string)"/>, with the words for more (<paramref name="more"/>) and for less (<paramref name="less"/>).</summary>
    public Formula Adjusted(long exact, string more, string less)
    {
        long difference = exact - (long)Math.Round(Value);
        if (difference == 0)
        {
            return this;
        }

        Formula rest = Size(new ByteSize(Math.Abs(difference))).Because(difference > 0 ? more : less);
        return difference > 0 ? this + rest : this - rest;
    }

    /// <summary>"(terms) B": a count of bytes written as a sum of terms, with its unit.</summary>
    public Formula InBytes() => new Unit(this, "B");

    /// <summary>"terms = 14.96 GiB": the terms and their total.</summary>
    public Formula Total() => new WithTotal(this);

    public abstract override string ToString();

    /// <summary>Text of this term as an operand of a term binding at <paramref name="outer"/>.</summary>
    private protected string Operand(int outer) => Precedence < outer ? $"({this})" : ToString();

    private sealed record Quantity(double Amount, string? Label, bool Compact) : Formula
    {
        public override double Value => Amount;

        private protected override int Precedence => 3;

        public override string ToString()
        {
            string number = Amount == Math.Floor(Amount) && Math.Abs(Amount) < 1e18
                ? ((long)Amount).ToString(Compact ? "0" : "N0", CultureInfo.InvariantCulture)
                : Amount.ToString("0.####", CultureInfo.InvariantCulture);
            return Label is null ? number : $"{number} {Label}";
        }
    }

    private sealed record SizeTerm(ByteSize Amount, string? Label) : Formula
    {
        public override double Value => Amount.Bytes;

        private protected override int Precedence => 3;

        public override string ToString() => Label is null ? Amount.ToString() : $"{Amount} {Label}";
    }

    private sealed record Product(Formula Left, Formula Right, bool Tight) : Formula
    {
        public override double Value => Left.Value * Right.Value;

        private protected override int Precedence => 2;

        // A product on the right of × needs no parentheses (a × (b × c) = a × b × c); a quotient does.
        public override string ToString() => Tight ? $"{Left.Operand(3)}·{Right.Operand(3)}" : $"{Left.Operand(2)} × {(Right is Product ? Right.ToString() : Right.Operand(3))}";
    }

    private sealed record Quotient(Formula Left, Formula Right) : Formula
    {
        public override double Value => Left.Value / Right.Value;

        private protected override int Precedence => 2;

        public override string ToString() => $"{Left.Operand(2)} ÷ {Right.Operand(3)}";
    }

    private sealed record Sum(Formula Left, Formula Right, bool Minus) : Formula
    {
        public override double Value => Minus ? Left.Value - Right.Value : Left.Value + Right.Value;

        private protected override int Precedence => 1;

        public override string ToString() => $"{Left.Operand(1)} {(Minus ? "−" : "+")} {Right.Operand(Minus ? 2 : 1)}";
    }

    private sealed record Labeled(Formula Inner, string? Prefix, string? Remark) : Formula
    {
        public override double Value => Inner.Value;

        private protected override int Precedence => Inner.Precedence;

        public override string ToString() => $"{(Prefix is null ? "" : Prefix + " ")}{Inner}{(Remark is null ? "" : $" ({Remark})")}";
    }

    private sealed record Unit(Formula Inner, string Name) : Formula
    {
        public override double Value => Inner.Value;

        private protected override int Precedence => 3;

        public override string ToString() => $"{Inner.Operand(3)} {Name}";
    }

    private sealed record WithTotal(Formula Inner) : Formula
    {
        public override double Value => Inner.Value;

        private protected override int Precedence => 0;

        public override string ToString() => $"{Inner} = {new ByteSize((long)Math.Round(Inner.Value))}";
    }
}
