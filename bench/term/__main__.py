from bench.term.run import main

main()
