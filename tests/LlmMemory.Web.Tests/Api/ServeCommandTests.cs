using LlmMemory.Cli;

namespace LlmMemory.Web.Tests.Api;

public sealed class ServeCommandTests
{
    [Theory]
    [InlineData("ftp://127.0.0.1:5000")]
    [InlineData("not a url")]
    public void A_bad_url_is_one_line_and_exit_code_2(string urls)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = CliApp.Run(["serve", "--urls", urls], stdout, stderr);

        Assert.Equal(CliApp.BadInput, code);
        Assert.Single(stderr.ToString().Trim().Split('\n'));
        Assert.Contains("--urls", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Help_shows_the_loopback_default()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = CliApp.Run(["serve", "--help"], stdout, stderr);

        Assert.Equal(0, code);
        Assert.Contains("http://127.0.0.1:5000", stdout.ToString(), StringComparison.Ordinal);
    }
}
