using System.Reflection;
using System.Reflection.Emit;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;

namespace LlmMemory.Tests.Architecture;

/// <summary>
/// No arrow back up: the library's folders form the layers of README's Layout — Units → Models → Formats/Workloads →
/// Sources → Estimation → Planning/Validation → Reporting — and a type may use only its own layer and those below, with no
/// cycle between folders. References are read from signatures and from method bodies (the IL's type, method and field
/// tokens), so a call hidden in a lambda counts too.
/// </summary>
public sealed class LayerTests
{
    /// <summary>The layers, lowest first; a namespace belongs to the longest prefix listed.</summary>
    private static readonly (string Namespace, int Layer)[] Layers =
    [
        ("LlmMemory", 0), ("LlmMemory.Numerics", 0),
        ("LlmMemory.Models", 1), ("LlmMemory.Hardware", 1),
        ("LlmMemory.Formats", 2), ("LlmMemory.Catalog", 2), ("LlmMemory.Workloads", 2),
        ("LlmMemory.Sources", 3),
        ("LlmMemory.Estimation", 4),
        ("LlmMemory.Planning", 5), ("LlmMemory.Validation", 5),
        ("LlmMemory.Reporting", 6),
    ];

    private static readonly Assembly Library = typeof(MemoryEstimator).Assembly;

    [Fact]
    public void No_type_uses_a_type_of_a_higher_layer()
    {
        string[] upward = [.. Edges()
            .Where(e => LayerOf(e.From) < LayerOf(e.To))
            .Select(e => $"{e.From} → {e.To} ({e.Via})")
            .Distinct()
            .Order(StringComparer.Ordinal)];

        Assert.True(upward.Length == 0, "arrows back up:\n  " + string.Join("\n  ", upward));
    }

    [Fact]
    public void No_two_folders_use_each_other()
    {
        var graph = Edges().GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var via = Edges().GroupBy(e => (e.From, e.To)).ToDictionary(g => g.Key, g => g.First().Via);
        var cycles = new List<string>();
        foreach (string start in graph.Keys.Order(StringComparer.Ordinal))
        {
            foreach (string other in graph[start].Where(o => Reaches(graph, o, start)))
            {
                // An edge on a cycle: the way back exists; it is named with one pair of types that makes it.
                cycles.Add($"{start} → {other} ({via[(start, other)]}), and back");
            }
        }

        Assert.True(cycles.Count == 0, "folder cycles:\n  " + string.Join("\n  ", cycles));
    }

    [Fact]
    public void Every_library_namespace_has_a_layer()
    {
        Assert.All(Library.GetTypes().Select(t => t.Namespace).OfType<string>().Where(Ours).Distinct(), ns => Assert.True(LayerOf(ns) >= 0, ns));
    }

    private static bool Reaches(Dictionary<string, HashSet<string>> graph, string from, string to)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>([from]);
        while (stack.TryPop(out string? node))
        {
            if (node == to)
            {
                return true;
            }

            if (seen.Add(node) && graph.TryGetValue(node, out HashSet<string>? next))
            {
                foreach (string n in next)
                {
                    stack.Push(n);
                }
            }
        }

        return false;
    }

    /// <summary>The library's own namespaces (not the regex source generator's).</summary>
    private static bool Ours(string? ns) => ns == "LlmMemory" || ns?.StartsWith("LlmMemory.", StringComparison.Ordinal) == true;

    private static int LayerOf(string ns) =>
        Layers.Where(l => ns == l.Namespace || ns.StartsWith(l.Namespace + ".", StringComparison.Ordinal)).Select(l => l.Layer).DefaultIfEmpty(-1).Last();

    /// <summary>Namespace → namespace references between the library's own types, each with one type pair that makes it.</summary>
    private static IEnumerable<(string From, string To, string Via)> Edges()
    {
        foreach (Type type in Library.GetTypes().Where(t => Ours(OwnNamespace(t))))
        {
            string from = OwnNamespace(type);
            foreach (Type used in References(type).SelectMany(Flatten).Where(t => t.Assembly == Library))
            {
                string to = OwnNamespace(used);
                if (to != from)
                {
                    yield return (from, to, $"{type.Name} uses {used.Name}");
                }
            }
        }
    }

    /// <summary>A compiler-generated nested type (a lambda's closure) belongs to its outermost declaring type's namespace.</summary>
    private static string OwnNamespace(Type type)
    {
        while (type.DeclaringType is Type outer)
        {
            type = outer;
        }

        return type.Namespace ?? "";
    }

    private static IEnumerable<Type> Flatten(Type type)
    {
        if (type.HasElementType)
        {
            foreach (Type t in Flatten(type.GetElementType()!))
            {
                yield return t;
            }

            yield break;
        }

        if (type.IsGenericType)
        {
            foreach (Type t in type.GetGenericArguments().SelectMany(Flatten))
            {
                yield return t;
            }

            type = type.GetGenericTypeDefinition();
        }

        if (!type.IsGenericParameter)
        {
            yield return type;
        }
    }

    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static IEnumerable<Type> References(Type type)
    {
        if (type.BaseType is Type baseType)
        {
            yield return baseType;
        }

        foreach (Type i in type.GetInterfaces())
        {
            yield return i;
        }

        foreach (FieldInfo f in type.GetFields(All))
        {
            yield return f.FieldType;
        }

        foreach (MethodBase m in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (m is MethodInfo mi)
            {
                yield return mi.ReturnType;
            }

            foreach (ParameterInfo p in m.GetParameters())
            {
                yield return p.ParameterType;
            }

            foreach (Type t in BodyReferences(m))
            {
                yield return t;
            }
        }
    }

    private static readonly Dictionary<short, OpCode> OpCodeByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>Types a method body names: the declaring types of the methods and fields it touches, and the types it names.</summary>
    private static IEnumerable<Type> BodyReferences(MethodBase method)
    {
        byte[]? il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null)
        {
            yield break;
        }

        Type[]? typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        Type[]? methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        int i = 0;
        while (i < il.Length)
        {
            short value = il[i] == 0xFE ? unchecked((short)(0xFE00 | il[i + 1])) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            OpCode op = OpCodeByValue[value];
            int size = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, i)),
                _ => 4,
            };
            if (op.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
            {
                MemberInfo? member = null;
                try
                {
                    member = method.Module.ResolveMember(BitConverter.ToInt32(il, i), typeArgs, methodArgs);
                }
                catch (ArgumentException)
                {
                    // A token of another module's generic instantiation: not one of ours.
                }

                switch (member)
                {
                    case Type t:
                        yield return t;
                        break;
                    case MethodBase m when m.DeclaringType is Type owner:
                        yield return owner;
                        if (m is MethodInfo { IsGenericMethod: true } generic)
                        {
                            foreach (Type a in generic.GetGenericArguments())
                            {
                                yield return a;
                            }
                        }

                        break;
                    case FieldInfo f when f.DeclaringType is Type owner:
                        yield return owner;
                        break;
                }
            }

            i += size;
        }
    }
}
