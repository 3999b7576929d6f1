namespace LlmMemory.Hub;

/// <summary>How far a Hub read has come: <paramref name="Done"/> of <paramref name="Total"/> files' headers.</summary>
/// <param name="Done">Files read.</param>
/// <param name="Total">Files to read.</param>
/// <param name="What">What is being read ("headers of meta-llama/Llama-3.1-8B").</param>
public readonly record struct HubProgress(int Done, int Total, string What);
