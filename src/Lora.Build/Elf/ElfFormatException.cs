using System;

namespace Lora.Build.Elf;

/// <summary>A file is not an ELF image we can read: names the file and what is wrong with it.</summary>
public sealed class ElfFormatException : Exception
{
    public ElfFormatException(string path, string problem)
        : base($"{path}: not a valid 64-bit little-endian ELF shared library ({problem}).")
    {
        Path = path;
    }

    /// <summary>The file at fault.</summary>
    public string Path { get; }
}
