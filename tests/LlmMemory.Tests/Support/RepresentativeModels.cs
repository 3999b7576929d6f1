using LlmMemory.Catalog;

namespace LlmMemory.Tests.Support;

/// <summary>
/// The smallest catalog model of every model type (and so of every family of programs the estimators run), for tests that
/// sweep many scenarios per model: replaying PyTorch for all 85 catalog models in every mode takes minutes, while every
/// code path is reached with one model per type.
/// </summary>
internal static class RepresentativeModels
{
    public static IReadOnlyList<string> Aliases { get; } = ModelCatalog.All
        .GroupBy(m => m.Architecture.ModelType)
        .Select(g => g.MinBy(m => m.Architecture.ParameterCount)!.Alias)
        .Order(StringComparer.Ordinal)
        .ToArray();
}
