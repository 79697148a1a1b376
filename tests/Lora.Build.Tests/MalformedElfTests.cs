using Lora.Build.Elf;

namespace Lora.Build.Tests;

/// <summary>Files that are not (whole) ELF libraries are refused with an <see cref="ElfFormatException"/> that names
/// the file, and are left as they were.</summary>
public sealed class MalformedElfTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>Makes one kind of broken library in <paramref name="files"/>.</summary>
    public static string Broken(TestFiles files, string kind)
    {
        var real = File.ReadAllBytes(TestFiles.CachedLibTorchSharp);
        return kind switch
        {
            "not-elf" => files.Write("not-elf.so", "#!/bin/sh\n# A script, long enough to be mistaken for nothing but what it is: not a shared library.\n"u8.ToArray()),
            "short-text" => files.Write("short-text.so", "hello"u8.ToArray()),
            "empty" => files.Write("empty.so", []),
            "short" => files.Write("short.so", real[..40]),
            "first-4k" => files.Write("first-4k.so", real[..4096]),
            // Just the 64-byte ELF header: e_shoff points far past the end.
            "header-only" => files.Write("header-only.so", real[..64]),
            // Everything up to the section header table, which is cut off half-way.
            "cut-section-headers" => files.Write("cut-section-headers.so", real[..(SectionHeaderOffset(real) + 100)]),
            "32-bit" => files.Write("32-bit.so", WithByte(real, 4, 1)),
            "big-endian" => files.Write("big-endian.so", WithByte(real, 5, 2)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    [Theory]
    [InlineData("not-elf", "magic")]
    [InlineData("short-text", "magic")]
    [InlineData("empty", "empty")]
    [InlineData("short", "shorter than an ELF header")]
    [InlineData("first-4k", "outside the 4096-byte file")]
    [InlineData("header-only", "cannot fit in the 64-byte file")]
    [InlineData("cut-section-headers", "section header")]
    [InlineData("32-bit", "ELFCLASS64")]
    [InlineData("big-endian", "little-endian")]
    public void Is_refused_naming_the_file(string kind, string problem)
    {
        var path = Broken(_files, kind);
        var bytes = File.ReadAllBytes(path);

        var e = Assert.Throws<ElfFormatException>(() => WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));

        Assert.Equal(path, e.Path);
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_missing_file_is_refused_naming_it()
    {
        var path = Path.Combine(_files.Directory, "absent.so");
        var e = Assert.Throws<ElfFormatException>(() => ElfImage.Load(path));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_string_table_link_to_a_section_without_file_data_is_refused()
    {
        // Point .gnu.version_r's sh_link at a SHT_NOBITS section (.bss) that claims to lie past the end of the file:
        // NOBITS contents are not in the file, so only "is it a string table" stops the reader from running off it.
        var real = File.ReadAllBytes(TestFiles.CachedLibTorchSharp);
        var image = ElfImage.Parse("x", real);
        var verneed = image.Sections.ToList().FindIndex(s => s.Type == ElfImage.ShtGnuVerneed);
        var nobits = image.Sections.ToList().FindIndex(s => s.Type == 8);
        Assert.True(verneed > 0 && nobits > 0);
        var shoff = SectionHeaderOffset(real);
        BitConverter.TryWriteBytes(real.AsSpan(shoff + verneed * 64 + 0x28, 4), (uint)nobits);
        BitConverter.TryWriteBytes(real.AsSpan(shoff + nobits * 64 + 0x18, 8), (ulong)real.Length + 4096);
        BitConverter.TryWriteBytes(real.AsSpan(shoff + nobits * 64 + 0x20, 8), (ulong)1 << 20);
        var path = _files.Write("bad-link.so", real);

        var e = Assert.Throws<ElfFormatException>(() => WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains("not a string table", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_version_entry_pointing_outside_its_section_is_refused()
    {
        // vn_aux of the first Elf64_Verneed sent far beyond .gnu.version_r (but still inside the file).
        var real = File.ReadAllBytes(TestFiles.CachedLibTorchSharp);
        var image = ElfImage.Parse("x", real);
        var verneed = image.Sections.Single(s => s.Type == ElfImage.ShtGnuVerneed);
        BitConverter.TryWriteBytes(real.AsSpan((int)verneed.Offset + 8, 4), (uint)(real.Length / 2));
        var path = _files.Write("bad-aux.so", real);

        var e = Assert.Throws<ElfFormatException>(() => WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains("outside its section .gnu.version_r", e.Message, StringComparison.Ordinal);
    }

    private static int SectionHeaderOffset(byte[] elf) => (int)BitConverter.ToUInt64(elf, 0x28);

    private static byte[] WithByte(byte[] bytes, int at, byte value)
    {
        var copy = (byte[])bytes.Clone();
        copy[at] = value;
        return copy;
    }
}
