from aion.cli import main

main()
