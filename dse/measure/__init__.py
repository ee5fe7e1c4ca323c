"""The measuring tools: how fast a training step runs (`bench`), where its time and memory go
(`profile`), and how much training time and accuracy move run to run here (`calibrate`)."""
