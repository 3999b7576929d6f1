using LlmMemory.Planning;
using LlmMemory.Reporting;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Support;

/// <summary>The solvers and the walk for a scenario whose model is local (catalog, count, file), resolved as the hosts resolve it.</summary>
internal static class Plans
{
    public static FitPlan For(Scenario scenario, int targetBatch = FitPlanner.DefaultTargetBatch) =>
        FitPlanner.Plan(ModelResolver.Resolve(scenario.Model, scenario.BaseDirectory), scenario, targetBatch);

    public static Explanation Explain(Scenario scenario) => Explainer.Explain(ModelResolver.Resolve(scenario.Model, scenario.BaseDirectory), scenario);
}
