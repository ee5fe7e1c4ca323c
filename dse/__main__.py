from dse.entry import main

main()
