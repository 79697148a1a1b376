namespace Lora.PackageTests;

/// <summary>A throw-away console app that references the Lora package from the temporary feed, in a directory
/// outside the repository (so none of the repository's Directory.Build.* or central versions apply).</summary>
public sealed class Consumer
{
    /// <summary>The line the consumer prints: its device and the 2x2 product [[1,2],[3,4]] x [[5,6],[7,8]].</summary>
    public const string ExpectedResult = "LORA-CONSUMER cpu 19,22,43,50";

    private const string Program = """
        using Lora.Backend;
        using TorchSharp;

        // The real thing: libtorch loads through Lora's start-up and multiplies two matrices.
        var device = TorchRuntime.Initialize("cpu");
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2], device: device);
        var b = torch.tensor(new float[] { 5, 6, 7, 8 }, [2, 2], device: device);
        var product = torch.mm(a, b).cpu().data<float>().ToArray();
        Console.WriteLine($"LORA-CONSUMER {device.type.ToString().ToLowerInvariant()} {string.Join(",", product)}");
        """;

    private Consumer(string directory) => Directory = directory;

    public string Directory { get; }

    /// <summary>bin/Debug/net10.0 of the consumer.</summary>
    public string OutputDirectory => Path.Combine(Directory, "bin", "Debug", "net10.0");

    public string NativeDirectory => Path.Combine(OutputDirectory, "runtimes", "linux-x64", "native");

    public static Consumer Create(PackageFixture package, string name, string extraProperties = "", string? program = null, string extraItems = "")
    {
        var directory = Path.Combine(package.Root, name);
        System.IO.Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                {extraProperties}
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="{PackageFixture.PackageId}" Version="{package.Version}" />
              </ItemGroup>
              <ItemGroup>
                {extraItems}
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(directory, "Program.cs"), program ?? Program);
        // Adds the temporary feed; the machine's configured sources (nuget.org) still apply for the dependencies.
        File.WriteAllText(Path.Combine(directory, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="lora-package-tests" value="{package.Feed}" />
              </packageSources>
            </configuration>
            """);
        return new Consumer(directory);
    }

    /// <summary>Adds (or replaces) a source file of the consumer.</summary>
    public void Write(string fileName, string text) => File.WriteAllText(Path.Combine(Directory, fileName), text);

    public ProcessResult Restore() =>
        ProcessRunner.DotNet(Directory, ["restore", "--disable-build-servers", "-tl:off"]);

    public ProcessResult Build(params string[] properties) =>
        ProcessRunner.DotNet(Directory, ["build", "--no-restore", "--disable-build-servers", "-tl:off", "-v:m", .. properties]);

    public ProcessResult Run(IReadOnlyDictionary<string, string?>? environment = null) =>
        ProcessRunner.DotNet(Directory, [Path.Combine(OutputDirectory, "consumer.dll")], environment);
}
