using LlmMemory.Catalog;
using LlmMemory.Hardware;
using LlmMemory.Planning;
using LlmMemory.Reporting;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>fit and explain answer in every mode without an error escaping; every catalog model is estimated in every mode.</summary>
public sealed class CatalogPlanningTests
{
    public static TheoryData<string> Models => new(ModelCatalog.All.Select(m => m.Alias));

    /// <summary>One model per model type: fit runs dozens of estimates per mode.</summary>
    public static TheoryData<string> Representative => new(Support.RepresentativeModels.Aliases);

    [Theory]
    [MemberData(nameof(Models))]
    public void Every_catalog_model_is_estimated_in_every_mode(string model)
    {
        foreach (Mode mode in new[] { Mode.Inference, Mode.Training, Mode.Lora, Mode.Qlora })
        {
            var scenario = new Scenario { Model = new ModelReference.Named(model), Mode = mode, Gpu = GpuCatalog.Find("rtx-4090"), Seq = 1024 };
            try
            {
                Assert.True(LlmMemory.Estimation.Engines.MemoryEstimator.Estimate(scenario).DeviceTotal.Bytes > 0);
            }
            catch (Exception error) when (error is NotSupportedException or FormatException)
            {
                Assert.DoesNotContain('\n', error.Message);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Representative))]
    public void Every_model_type_is_planned_and_explained_in_every_mode(string model)
    {
        foreach (Mode mode in new[] { Mode.Inference, Mode.Training, Mode.Lora, Mode.Qlora })
        {
            var scenario = new Scenario
            {
                Model = new ModelReference.Named(model),
                Mode = mode,
                Gpu = GpuCatalog.Find("rtx-4090"),
                Lora = mode is Mode.Lora or Mode.Qlora ? LoraSettings.Default : null,
            };

            FitPlan plan;
            try
            {
                plan = Plans.For(scenario);
            }
            catch (Exception error) when (error is NotSupportedException or FormatException)
            {
                // A mode the estimator refuses for this model (an encoder with no LoRA target, say) must say why in one line.
                Assert.DoesNotContain('\n', error.Message);
                continue;
            }

            Assert.Equal(plan.Fits, plan.AsGiven?.Fits == true);
            Explanation explained = Plans.Explain(scenario);
            Assert.Equal(9, explained.Sections.Count);
            Assert.All(explained.Sections, s => Assert.NotEmpty(s.Text));
        }
    }
}
