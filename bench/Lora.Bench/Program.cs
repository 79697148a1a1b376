using Lora.Bench;

return args.FirstOrDefault() switch
{
    "load-memory" => LoadMemory.Run(args[1..]),
    "train-throughput" => TrainThroughput.Run(args[1..]),
    "quant-memory" => QuantMemory.Run(args[1..]),
    "qlora-step" => QloraStep.Run(args[1..]),
    "quant-speed" => QuantSpeed.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Lora.Bench load-memory [--dir DIR] [--dtype bf16|fp32] | train-throughput [--layers N --hidden N --seq N --batch N --targets LIST --device D] | quant-memory [--dir DIR] | qlora-step [--quantize nf4|fp4|int8 --device D] | quant-speed");
    return 2;
}
