using System.Runtime.Versioning;

// The libstdc++ fix exists for Linux only, and these tests use this machine's /lib and ELF files.
[assembly: SupportedOSPlatform("linux")]
